"""Association policy: which calling AE titles may connect, from which hosts.

pynetdicom checks ``require_calling_aet`` during negotiation, in the association's own
thread; :class:`PolicyAE` answers that property per association, so the allow-list can
also depend on the peer's address (optional host check per peer).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable

from pynetdicom import AE

from dicom_nodes.config import DicomPeer, DicomSettings

log = logging.getLogger(__name__)

# AE titles cannot contain a backslash: this entry never matches a real caller.
_NOBODY = "\\nobody\\"


def _host_matches(rule: str | None, address: str) -> bool:
    if not rule:
        return True
    try:
        return ipaddress.ip_address(address) in ipaddress.ip_network(rule, strict=False)
    except ValueError:
        return rule == address


class AssociationPolicy:
    def __init__(self, settings: DicomSettings) -> None:
        self.allow_any = settings.allow_any_calling_ae
        self.peers: list[DicomPeer] = list(settings.peers)

    def allowed_titles(self, address: str | None) -> list[str]:
        """Calling AE titles accepted from ``address``; empty list means any."""
        if self.allow_any:
            return []
        titles = [p.ae_title for p in self.peers if _host_matches(p.host, address or "")]
        return titles or [_NOBODY]

    def is_allowed(self, ae_title: str, address: str) -> bool:
        titles = self.allowed_titles(address)
        return not titles or ae_title.strip() in titles

    def modality_of(self, ae_title: str) -> str | None:
        for peer in self.peers:
            if peer.ae_title == ae_title.strip():
                return peer.modality
        return None


class PolicyAE(AE):
    """An AE whose calling-AE allow-list is evaluated per association and peer host,
    and which refuses new associations (local limit exceeded) while ``is_full()``."""

    def __init__(
        self,
        ae_title: str,
        policy: AssociationPolicy,
        is_full: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(ae_title)
        self.policy = policy
        self.is_full = is_full
        self._max_associations = 16

    @property
    def maximum_associations(self) -> int:
        if self.is_full():
            log.error("instance store above its high-water mark: association refused")
            return 0  # pynetdicom then rejects with "local limit exceeded" (transient)
        return self._max_associations

    @maximum_associations.setter
    def maximum_associations(self, value: int) -> None:
        self._max_associations = value

    @property
    def require_calling_aet(self) -> list[str]:
        assoc = threading.current_thread()
        requestor = getattr(assoc, "requestor", None)
        address = getattr(requestor, "address", None)
        titles = self.policy.allowed_titles(address)
        calling = getattr(getattr(requestor, "primitive", None), "calling_ae_title", None)
        if titles and calling is not None and str(calling).strip() not in titles:
            log.warning("association refused: calling AE %r from %s not allowed", calling, address)
        return titles

    @require_calling_aet.setter
    def require_calling_aet(self, ae_titles: list[str]) -> None:
        raise AttributeError("set the allow-list through the gateway settings")
