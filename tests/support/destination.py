"""A gateway forward destination (TOML table) pointing at a local Orthanc."""

from __future__ import annotations

from gateway.local_orthanc import LocalOrthanc


def destination_for(orthanc: LocalOrthanc, **extra: object) -> dict[str, object]:
    """A gateway destination (TOML table) pointing at ``orthanc``."""
    cfg = orthanc.config
    dest: dict[str, object] = {
        "name": "pacs",
        "protocol": "dicom",
        "host": "127.0.0.1",
        "port": cfg.dicom_port,
        "ae_title": cfg.aet,
        "url": cfg.url,
        "username": cfg.username,
        "password": cfg.password,
    }
    dest.update(extra)
    return dest
