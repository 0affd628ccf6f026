"""What the DIMSE services need from the application, and the plain data they exchange.

The SCPs in ``dicom_nodes`` speak DICOM only: they are handed objects satisfying these
protocols (the receive path for C-STORE, the worklist, MPPS and storage commitment
records) and never see a database session or the service's settings. The gateway binds
them to its database in ``gateway/process/wiring.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydicom import Dataset

# --- C-STORE -------------------------------------------------------------------------


class StoreOutcome(enum.Enum):
    """What became of one received instance; only STORED and DUPLICATE are a success."""

    STORED = "stored"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    MISMATCH = "mismatch"
    OUT_OF_RESOURCES = "out_of_resources"
    ERROR = "error"


class Receipt(Protocol):
    """The answer of the receive path for one instance."""

    @property
    def outcome(self) -> StoreOutcome: ...

    @property
    def reason(self) -> str: ...


class TempFiles(Protocol):
    """Where received data sets are streamed to, and how an unwanted one is removed."""

    @property
    def tmp_dir(self) -> Path: ...

    def discard(self, tmp_path: Path) -> None: ...


class InstanceSink(Protocol):
    """The durable receive path the Storage SCP hands each received temp file to.

    ``receive`` answers only once the instance is safely stored (or refused);
    ``on_stored`` listeners are called after each committed instance.
    """

    on_stored: list[Callable[[], None]]

    @property
    def store(self) -> TempFiles: ...

    def receive(
        self, tmp_path: Path, *, sop_class_uid: str, sop_instance_uid: str, calling_ae: str
    ) -> Receipt: ...

    def disk_full(self) -> bool: ...


# --- Modality Worklist ----------------------------------------------------------------


@dataclass(frozen=True)
class WorklistQuery:
    """A C-FIND identifier plus what the DICOM node knows of the caller."""

    identifier: Dataset
    calling_ae: str = ""
    calling_modality: str | None = None  # from dicom.peers, when configured
    modality_from_calling_ae: bool = True
    max_results: int = 500


# The matching worklist items (at most ``query.max_results``), read in full before the
# first is sent.
WorklistSource = Callable[[WorklistQuery], Iterable[Dataset]]


# --- MPPS -----------------------------------------------------------------------------


class MppsOutcome(enum.Enum):
    OK = "ok"
    DUPLICATE = "duplicate"  # N-CREATE of an existing instance
    INVALID_VALUE = "invalid value"  # a status that is not allowed here
    NO_SUCH_INSTANCE = "no such instance"  # N-SET of an unknown instance
    FINALISED = "finalised"  # N-SET after COMPLETED or DISCONTINUED


@dataclass(frozen=True)
class MppsResult:
    outcome: MppsOutcome
    reason: str = ""
    study_completed: bool = False


class MppsRecorder(Protocol):
    """Records MPPS instances; ``films``: films printed per the Film Consumption
    Sequence, None when the message does not report it."""

    def create(
        self, sop_uid: str, attrs: Dataset, calling_ae: str, *, films: int | None
    ) -> MppsResult: ...

    def update(self, sop_uid: str, mods: Dataset, *, films: int | None) -> MppsResult: ...


# --- Storage Commitment ---------------------------------------------------------------


class Recorded(enum.Enum):
    NEW = "new"
    REPEATED = "repeated"  # same Transaction UID from the same AE: already recorded
    CONFLICT = "conflict"  # Transaction UID already used by another AE


class CommitmentRecorder(Protocol):
    """Stores a validated Request Storage Commitment durably before it is acknowledged;
    ``references`` are (SOP Class UID, SOP Instance UID) pairs."""

    def __call__(
        self,
        transaction_uid: str,
        calling_ae: str,
        peer_address: str,
        references: Sequence[tuple[str, str]],
    ) -> Recorded: ...
