"""Drive the real dcmtk tools (echoscu, storescu, findscu) as a modality would."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _env() -> dict[str, str]:
    return dict(os.environ, TCP_NODELAY="1")


def echoscu(
    port: int, *, aet: str = "ECHOSCU", aec: str = "RISGATE"
) -> subprocess.CompletedProcess[str]:
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
