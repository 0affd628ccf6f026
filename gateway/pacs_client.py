"""The PACS client: Orthanc's REST API through pyorthanc (httpx), with timeouts.

Only calls present in Orthanc 1.10.1 are used: ``POST /instances``,
``POST /tools/lookup``, ``GET /studies/{id}/instances``, ``GET /system``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from pyorthanc import Orthanc

from gateway.settings import DestinationSettings


class PacsError(Exception):
    """The PACS refused or could not be reached; the message is safe to log."""


class OrthancClient:
    def __init__(
        self, url: str, username: str | None, password: str | None, timeout: float
    ) -> None:
        self.url = url.rstrip("/")
        self.api = Orthanc(self.url, username=username, password=password, timeout=timeout)

    @classmethod
    def for_destination(cls, dest: DestinationSettings) -> OrthancClient:
        if not dest.url:
            raise PacsError(f"destination {dest.name} has no REST url")
        return cls(dest.url, dest.username, dest.secret(), dest.timeout_s)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.api.request(method, self.url + path, **kwargs)
        except httpx.HTTPError as exc:
            raise PacsError(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code == 401:
            raise PacsError(f"{method} {path}: HTTP 401 unauthorized (check user and password)")
        if response.status_code >= 400:
            raise PacsError(f"{method} {path}: HTTP {response.status_code} {response.text[:200]}")
        if not response.content:
            return None
        return response.json()

    def ping(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/system")
        return result

    def upload(self, path: Path) -> str:
        """Store one DICOM file; returns Orthanc's instance id."""
        return self.upload_bytes(path.read_bytes())

    def upload_bytes(self, data: bytes) -> str:
        result = self._call(
            "POST", "/instances", content=data, headers={"Content-Type": "application/dicom"}
        )
        return str(result.get("ID", "")) if isinstance(result, dict) else ""

    def delete_study(self, study_uid: str) -> bool:
        """Delete a study (every Orthanc resource with this Study Instance UID)."""
        deleted = False
        while (orthanc_id := self.study_id(study_uid)) is not None:
            self._call("DELETE", f"/studies/{orthanc_id}")
            deleted = True
        return deleted

    def study_id(self, study_uid: str) -> str | None:
        matches = self._call("POST", "/tools/lookup", content=study_uid)
        for item in matches or []:
            if item.get("Type") == "Study":
                return str(item["ID"])
        return None

    def study_sop_uids(self, study_uid: str) -> set[str]:
        """SOP Instance UIDs Orthanc holds for a study (empty if it has none)."""
        orthanc_id = self.study_id(study_uid)
        if orthanc_id is None:
            return set()
        instances = self._call("GET", f"/studies/{orthanc_id}/instances")
        return {
            i["MainDicomTags"]["SOPInstanceUID"]
            for i in instances or []
            if "SOPInstanceUID" in i.get("MainDicomTags", {})
        }

    def close(self) -> None:
        self.api.close()
