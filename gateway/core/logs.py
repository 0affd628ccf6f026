"""Structured JSON logs on stderr. Messages must never carry patient names or ids.

Python warnings (pydicom's value warnings above all, which quote the element's value: a
patient's name or id) are logged too, as records of the ``py.warnings`` logger that say
what kind of warning, where it was raised and which DICOM tags and VRs it names, never
its text (:func:`warning_summary`).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

_TAG = re.compile(r"\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")
_VR = re.compile(r"\bVRs? ([A-Z]{2})\b")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exc_type"] = record.exc_info[0].__name__
            # Where it failed, without the exception's message (it may hold patient data).
            frames = traceback.extract_tb(record.exc_info[2])[-6:]
            entry["exc_where"] = " < ".join(
                f"{Path(f.filename).name}:{f.lineno}:{f.name}" for f in reversed(frames)
            )
        return json.dumps(entry, ensure_ascii=False)


def warning_summary(
    message: Warning | str, category: type[Warning], filename: str, lineno: int
) -> str:
    """A warning as it may be logged: its category, the file and line that raised it, the
    DICOM tags and VRs its text names; nothing else of the text."""
    text = str(message)
    where = "/".join(Path(filename).parts[-2:])
    tags = sorted({f"({g.upper()},{e.upper()})" for g, e in _TAG.findall(text)})
    vrs = sorted(set(_VR.findall(text)))
    named = "".join(
        f"; {label} {', '.join(values)}" for label, values in (("tag", tags), ("VR", vrs)) if values
    )
    return f"{category.__name__} at {where}:{lineno}{named} (text withheld: it may quote data)"


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` once logging is set up: a record instead of raw stderr."""
    logging.getLogger("py.warnings").warning(
        "%s", warning_summary(message, category, filename, lineno)
    )


def setup_logging(level: str = "INFO", json_format: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_format:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pynetdicom logs dataset summaries (with patient data) at DEBUG/INFO: keep it quiet.
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    # pydicom's value-validation warnings quote the value (patient names, IDs); its reading
    # validation is no longer off process-wide (dicom_nodes.fast_path), so keep them out.
    logging.getLogger("pydicom").setLevel(logging.ERROR)
    # The same warnings also go through Python's warnings: logged without their text.
    warnings.showwarning = _log_warning
