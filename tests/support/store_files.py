"""Files a test finds in a gateway's instance store, without the spare temp files made
ahead for the next receptions (:mod:`dicom_nodes.spare_files`)."""

from __future__ import annotations

from pathlib import Path

from dicom_nodes.spare_files import is_unused_spare


def store_files(root: Path) -> set[Path]:
    """Every file under ``root`` but unused spares."""
    return {p for p in root.rglob("*") if p.is_file() and not is_unused_spare(p)}
