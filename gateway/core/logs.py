"""Structured JSON logs on stderr. Messages must never carry patient names or ids."""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from pathlib import Path


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
