"""The DICOM node's settings (the ``[dicom]`` section and its ``peers``), as pydantic models.

They live with the DIMSE code that reads them; ``gateway.core.settings`` puts them into the
service's ``Settings`` under ``dicom`` (keys and defaults in ``docs/configuration.md``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from dicom_nodes.identifiers import validate_ae_title


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DicomPeer(_Section):
    """A remote DICOM node allowed to associate (a modality, a workstation)."""

    ae_title: str
    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    modality: str | None = None

    _ae = field_validator("ae_title")(validate_ae_title)


class DicomSettings(_Section):
    ae_title: str = "RISGATE"
    host: str = "127.0.0.1"
    port: int = Field(default=11112, ge=0, le=65535)
    processes: int = Field(default=1, ge=1, le=64)
    max_pdu: int = Field(default=131072, ge=4096, le=4_194_304)
    # true: the fast DICOM path if pydicom/pynetdicom are the verified versions, else stock
    # pynetdicom (logged); "force": refuse to start instead; false: stock pynetdicom.
    fast_path: bool | Literal["force"] = True
    max_associations: int = Field(default=16, ge=1, le=1000)
    require_called_ae: bool = True
    allow_any_calling_ae: bool = False
    peers: list[DicomPeer] = Field(default_factory=list)
    network_timeout_s: float = Field(default=60.0, gt=0)
    dimse_timeout_s: float = Field(default=60.0, gt=0)
    acse_timeout_s: float = Field(default=30.0, gt=0)
    # DICOM TLS on a second port (same AE, same allow-list); off while tls_port is unset.
    tls_port: int | None = Field(default=None, ge=0, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_require_client_cert: bool = False

    _ae = field_validator("ae_title")(validate_ae_title)
