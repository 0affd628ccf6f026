"""Drive the real dcmtk tools (echoscu, storescu, findscu) as a modality would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

from tests.support.tools import require


def _env() -> dict[str, str]:
    return dict(os.environ, TCP_NODELAY="1")


def echoscu(
    port: int, *, aet: str = "ECHOSCU", aec: str = "RISGATE"
) -> subprocess.CompletedProcess[str]:
    require("echoscu")
    return subprocess.run(
        ["echoscu", "-aet", aet, "-aec", aec, "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )


def storescu(
    port: int,
    files: Sequence[Path],
    *,
    aet: str = "STORESCU",
    aec: str = "RISGATE",
    extra: Sequence[str] = (),
    timeout: float = 600,
) -> subprocess.CompletedProcess[str]:
    require("storescu")
    args = ["storescu", "-aet", aet, "-aec", aec, "--max-send-pdu", "131072", *extra]
    args += ["127.0.0.1", str(port), *[str(f) for f in files]]
    return subprocess.run(args, capture_output=True, text=True, env=_env(), timeout=timeout)


# storescu proposes only uncompressed syntaxes unless told; these send a file as it is.
PROPOSE_FLAG = {
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.57": "-xs",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2": "-xi",
}


def storescu_acknowledged(
    port: int, files: Sequence[Path], *, aet: str = "STORESCU", aec: str = "RISGATE"
) -> Iterator[Path]:
    """Run ``storescu -v``; yield each file as its C-STORE is answered with success.

    What the modality saw acknowledged is what a durability test must find again.
    """
    require("storescu")
    proc = subprocess.Popen(
        ["storescu", "-v", "-aet", aet, "-aec", aec, "127.0.0.1", str(port), *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={"TCP_NODELAY": "1", "PATH": "/usr/bin:/bin"},
    )
    current: str | None = None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "Sending file: " in line:
                current = line.split("Sending file: ", 1)[1].strip()
            elif "Received Store Response (Success)" in line and current:
                yield Path(current)
    finally:
        proc.wait(60)
