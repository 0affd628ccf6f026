"""TLS contexts for the gateway's listeners (DICOM, MLLP) and its MLLP client.

Servers present ``cert_file``/``key_file``; with ``ca_file`` they verify client
certificates against it (required when ``require_client_cert``, else optional). Clients
verify the server against ``ca_file`` (or the system store) and may present their own
certificate. TLS 1.2 is the floor (DICOM PS3.15 BCP 195 profiles, IHE ATNA).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dicom_nodes.config import DicomSettings
    from gateway.core.settings import HL7Settings, NotifySettings

PathLike = str | Path


def server_context(
    cert_file: PathLike,
    key_file: PathLike,
    ca_file: PathLike | None = None,
    require_client_cert: bool = False,
) -> ssl.SSLContext:
    """A server-side context; raises ``ValueError`` when client certs are required
    without a CA to check them against."""
    if require_client_cert and ca_file is None:
        raise ValueError("client certificates required but no CA file given")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    if ca_file is not None:
        ctx.load_verify_locations(str(ca_file))
        ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_context(
    ca_file: PathLike | None = None,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    check_hostname: bool = True,
) -> ssl.SSLContext:
    """A client-side context verifying the server (``ca_file`` or the system CAs)."""
    ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = check_hostname
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file is not None else None)
    return ctx


def _listener_context(
    section: str,
    cert_file: Path | None,
    key_file: Path | None,
    ca_file: Path | None,
    require_client_cert: bool,
) -> ssl.SSLContext:
    if cert_file is None or key_file is None:
        raise ValueError(f"{section}.tls_cert_file and {section}.tls_key_file are required")
    return server_context(cert_file, key_file, ca_file, require_client_cert)


def dicom_server_context(settings: DicomSettings) -> ssl.SSLContext | None:
    """The DICOM TLS port's context, or None when ``dicom.tls_port`` is unset."""
    if settings.tls_port is None:
        return None
    return _listener_context(
        "dicom",
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_ca_file,
        settings.tls_require_client_cert,
    )


def hl7_server_context(settings: HL7Settings) -> ssl.SSLContext | None:
    """The MLLP listener's context, or None (plain TCP) when no certificate is set."""
    if settings.tls_cert_file is None and settings.tls_key_file is None:
        return None
    return _listener_context(
        "hl7",
        settings.tls_cert_file,
        settings.tls_key_file,
        settings.tls_ca_file,
        settings.tls_require_client_cert,
    )


def notify_client_context(settings: NotifySettings) -> ssl.SSLContext | None:
    """The context for MLLP to the EMR, or None (plain TCP) unless ``notify.tls``."""
    if not settings.tls:
        return None
    return client_context(settings.tls_ca_file, settings.tls_cert_file, settings.tls_key_file)
