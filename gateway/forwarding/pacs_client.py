"""The PACS client: Orthanc's REST API through pyorthanc (httpx), with timeouts.

Only calls present in Orthanc 1.10.1 are used: ``POST /instances`` (its answer's
``Status`` is ``Success`` or ``AlreadyStored``), ``GET /instances/{id}/file``,
``DELETE /instances/{id}``, ``POST /tools/lookup``, ``GET /studies/{id}/instances``,
``GET /system``.

httpx and pyorthanc (~7 MB) are imported when a client is made: a DICOM receiver child
imports this module (through the forward hook) but never talks REST.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.core.settings import DestinationSettings

if TYPE_CHECKING:
    import httpx


class PacsError(Exception):
    """The PACS refused or could not be reached; the message is safe to log."""


class OrthancClient:
    def __init__(
        self, url: str, username: str | None, password: str | None, timeout: float
    ) -> None:
        from pyorthanc import Orthanc

        self.url = url.rstrip("/")
        self.api = Orthanc(self.url, username=username, password=password, timeout=timeout)

    @classmethod
    def for_destination(cls, dest: DestinationSettings) -> OrthancClient:
        if not dest.url:
            raise PacsError(f"destination {dest.name} has no REST url")
        return cls(dest.url, dest.username, dest.secret(), dest.timeout_s)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        import httpx

        try:
            response = self.api.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise PacsError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 401:
            raise PacsError(f"{method} {path}: HTTP 401 unauthorized (check user and password)")
        if response.status_code >= 400:
            raise PacsError(f"{method} {path}: HTTP {response.status_code} {response.text[:200]}")
        return response

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if not response.content:
            return None
        return response.json()

    def ping(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/system")
        return result

    def upload(self, path: Path) -> str:
        """Store one DICOM file (read in pieces, not held whole); returns Orthanc's id."""
        with open(path, "rb") as f:
            return self.upload_stream(iter(lambda: f.read(1 << 20), b""), path.stat().st_size)

    def upload_stream(self, pieces: Iterator[bytes], length: int) -> str:
        """Store one DICOM file of ``length`` bytes given in pieces (sent as they come,
        with a Content-Length: no chunked encoding); returns Orthanc's instance id."""
        headers = {"Content-Type": "application/dicom", "Content-Length": str(length)}
        result = self._call("POST", "/instances", content=pieces, headers=headers)
        return str(result.get("ID", "")) if isinstance(result, dict) else ""

    def upload_bytes(self, data: bytes) -> str:
        return self.store(data)[0]

    def store(self, data: bytes) -> tuple[str, str]:
        """Store one DICOM file; returns Orthanc's instance id and the ``Status``
        (``AlreadyStored``: an instance with the same id was kept, this one dropped)."""
        result = self._call(
            "POST", "/instances", content=data, headers={"Content-Type": "application/dicom"}
        )
        if not isinstance(result, dict):
            return "", ""
        return str(result.get("ID", "")), str(result.get("Status", ""))

    def download(self, instance_id: str) -> bytes:
        """The DICOM file of one instance, as Orthanc stores it."""
        return self._request("GET", f"/instances/{_orthanc_id(instance_id)}/file").content

    def delete_instance(self, instance_id: str) -> None:
        """Delete one instance (Orthanc drops its series, study, patient once empty)."""
        try:
            self._call("DELETE", f"/instances/{_orthanc_id(instance_id)}")
        except PacsError as exc:
            if "HTTP 404" not in str(exc):  # already gone: what a retry expects
                raise

    def study_ids(self, study_uid: str) -> list[str]:
        """Orthanc's studies with this Study Instance UID: one per Patient ID it holds
        (Orthanc's study id hashes both)."""
        matches = self._call("POST", "/tools/lookup", content=study_uid)
        return [str(item["ID"]) for item in matches or [] if item.get("Type") == "Study"]

    def study_id(self, study_uid: str) -> str | None:
        ids = self.study_ids(study_uid)
        return ids[0] if ids else None

    def study_instances(self, study_uid: str) -> list[tuple[str, str]]:
        """(Orthanc instance id, SOP Instance UID) of every instance with this Study
        Instance UID, under whichever Patient ID."""
        found = []
        for orthanc_id in self.study_ids(study_uid):
            for item in self._call("GET", f"/studies/{orthanc_id}/instances") or []:
                sop_uid = item.get("MainDicomTags", {}).get("SOPInstanceUID")
                if sop_uid:
                    found.append((str(item["ID"]), str(sop_uid)))
        return found

    def study_sop_uids(self, study_uid: str) -> set[str]:
        """SOP Instance UIDs Orthanc holds for a study (empty if it has none)."""
        return {sop_uid for _, sop_uid in self.study_instances(study_uid)}

    def close(self) -> None:
        self.api.close()


def _orthanc_id(value: str) -> str:
    """An Orthanc resource id (hex groups and dashes) before it goes into a URL path."""
    if not value or len(value) > 64 or value.strip("0123456789abcdef-"):
        raise PacsError("invalid Orthanc resource id")
    return value
