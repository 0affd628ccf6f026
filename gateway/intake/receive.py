"""The durable receive path: validated file -> store -> index + outbox rows, one transaction.

The DICOM node calls :meth:`Receiver.receive` with the temp file of one C-STORE; only
when it returns ``STORED`` or ``DUPLICATE`` may the modality be told "success". The file's
fsync runs while the index row commits; the answer waits for both (a failed fsync
withdraws the row). A re-sent instance whose indexed file is short or missing replaces it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dicom_nodes.ports import StoreOutcome as Outcome
from gateway.core.database import Database
from gateway.core.fastsql import Conflict, FastSQL
from gateway.core.instance_store import InstanceStore
from gateway.core.models import Instance, Patient, Series, Study, StudyState, utcnow
from gateway.core.upsert import insert_for
from gateway.intake.instance_meta import InstanceMeta, InvalidDataset, read_instance_meta

log = logging.getLogger(__name__)

# The disk's fill level is read at most this often (a statvfs per instance adds up).
DISK_CHECK_INTERVAL_S = 1.0


@dataclass(frozen=True)
class ReceiveResult:
    outcome: Outcome
    reason: str = ""
    instance_pk: int | None = None


@dataclass(frozen=True)
class StoredInstance:
    """What hooks see of a newly stored instance (inside the indexing transaction)."""

    instance_pk: int
    study_pk: int
    meta: InstanceMeta
    calling_ae: str
    path: str


InstanceHook = Callable[[Session, StoredInstance], None]
WithdrawHook = Callable[[Session, int], None]


class Indexed(NamedTuple):
    """An instance row as the duplicate check sees it."""

    pk: int
    path: str
    size: int


class Receiver:
    def __init__(
        self,
        db: Database,
        store: InstanceStore,
        *,
        hooks: list[InstanceHook] | None = None,
        high_water_percent: float = 100.0,
    ) -> None:
        self.db = db
        self.store = store
        self.hooks = list(hooks or [])
        # Run when an instance is taken back out of the index (``withdraw``).
        self.withdraw_hooks: list[WithdrawHook] = []
        # Called after an instance is committed (e.g. to wake the forward senders).
        self.on_stored: list[Callable[[], None]] = []
        self.high_water_percent = high_water_percent
        # series uid -> (series pk, study pk): later instances of a series skip the
        # patient/study/series upserts (the receive path is CPU-bound).
        self._series_cache: dict[str, tuple[int, int]] = {}
        self._disk_full = False
        self._disk_checked_at = -DISK_CHECK_INTERVAL_S

    def receive(
        self, tmp_path: Path, *, sop_class_uid: str, sop_instance_uid: str, calling_ae: str
    ) -> ReceiveResult:
        result = self._receive(
            tmp_path,
            sop_class_uid=sop_class_uid,
            sop_instance_uid=sop_instance_uid,
            calling_ae=calling_ae,
        )
        if result.outcome is Outcome.STORED:
            self.notify_stored()
        return result

    def notify_stored(self) -> None:
        """Tell the listeners an instance was committed (here or in a receiver process)."""
        for listener in self.on_stored:
            try:
                listener()
            except Exception:  # committed already: a failed wake-up only delays work
                log.exception("stored-instance listener failed")

    def _receive(
        self, tmp_path: Path, *, sop_class_uid: str, sop_instance_uid: str, calling_ae: str
    ) -> ReceiveResult:
        if self.disk_full():
            self.store.discard(tmp_path)
            log.error("instance store above its high-water mark: C-STORE refused")
            return ReceiveResult(Outcome.OUT_OF_RESOURCES, "gateway storage is full")
        try:
            meta = read_instance_meta(
                tmp_path, expected_sop_class=sop_class_uid, expected_sop_instance=sop_instance_uid
            )
        except InvalidDataset as exc:
            self.store.discard(tmp_path)
            log.warning("C-STORE refused from %s: %s", calling_ae, exc.reason)
            outcome = Outcome.MISMATCH if exc.mismatch else Outcome.INVALID
            return ReceiveResult(outcome, exc.reason)
        try:
            size = tmp_path.stat().st_size
            # Read-only duplicate check and file placement happen outside the write
            # transaction, so fsyncs of concurrent associations do not queue on the lock.
            existing = self._existing(meta.sop_instance_uid)
            if existing is not None and not self._withdrawn_if_broken(existing):
                return self._duplicate(existing.pk, tmp_path, calling_ae)
            placement = self.store.place(tmp_path, meta)
            try:
                pk = self._index_and_hook(meta, placement.relative, size, calling_ae)
            except (IntegrityError, Conflict):
                # The same instance indexed meanwhile by a concurrent association,
                # or a cached series that was removed meanwhile.
                self._series_cache.clear()
                existing = self._existing(meta.sop_instance_uid)
                if existing is not None:
                    placement.wait_durable()  # this copy is now the file of its row
                    return self._duplicate(existing.pk, None, calling_ae)
                pk = self._index_and_hook(meta, placement.relative, size, calling_ae)
            # The row is committed; the file's fsync ran meanwhile. Only both durable
            # may be acknowledged: a failed fsync takes the row back out.
            try:
                placement.wait_durable()
            except OSError:
                self.withdraw(pk, placement.relative)
                raise
            return ReceiveResult(Outcome.STORED, "", pk)
        except OSError as exc:
            self.store.discard(tmp_path)
            log.error("C-STORE could not be stored: %s", type(exc).__name__)
            return ReceiveResult(Outcome.OUT_OF_RESOURCES, f"storage error: {exc.strerror}")
        except Exception as exc:
            self.store.discard(tmp_path)
            log.exception("C-STORE could not be indexed")
            return ReceiveResult(Outcome.ERROR, f"indexing failed: {type(exc).__name__}")

    def disk_full(self) -> bool:
        now = time.monotonic()
        if now >= self._disk_checked_at + DISK_CHECK_INTERVAL_S:
            self._disk_full = self.store.used_percent() >= self.high_water_percent
            self._disk_checked_at = now
        return self._disk_full

    def _index_and_hook(self, meta: InstanceMeta, relative: str, size: int, calling_ae: str) -> int:
        """Index the instance and run the hooks in one committed transaction; its pk."""
        with self.db.write_session() as session:
            pk, study_pk = self._index(session, meta, relative, size, calling_ae)
            stored = StoredInstance(pk, study_pk, meta, calling_ae, relative)
            for hook in self.hooks:
                hook(session, stored)
        return pk

    def _existing(self, sop_instance_uid: str) -> Indexed | None:
        """The instance already indexed with this SOP Instance UID, if any."""
        row = self.db.read_one(
            "SELECT id, path, size FROM instances WHERE sop_instance_uid = ?", [sop_instance_uid]
        )
        return Indexed(int(row[0]), str(row[1]), int(row[2])) if row is not None else None

    def _withdrawn_if_broken(self, existing: Indexed) -> bool:
        """A re-sent instance whose indexed file is short or missing (a power cut between
        its index commit and its fsync: never acknowledged) replaces it: the old row is
        withdrawn. Files of purged studies are gone on purpose: those stay duplicates."""
        if self.store.intact(existing.path, existing.size):
            return False
        purged = self.db.read_one(
            "SELECT st.purged_at FROM instances i JOIN series se ON se.id = i.series_pk"
            " JOIN studies st ON st.id = se.study_pk WHERE i.id = ?",
            [existing.pk],
        )
        if purged is not None and purged[0] is not None:
            return False
        log.warning("re-sent instance replaces its indexed copy, which is short or missing")
        self.withdraw(existing.pk, existing.path)
        return True

    def withdraw(self, instance_pk: int, relative: str) -> None:
        """Take an instance out of the index (the withdraw hooks drop what was queued for
        it) and delete its file: it was never acknowledged, its sender sends it again.
        The file stays if the row was gone already (a concurrent re-send placed it)."""
        with self.db.write_session() as session:
            for hook in self.withdraw_hooks:
                hook(session, instance_pk)
            deleted = session.execute(delete(Instance).where(Instance.id == instance_pk))
        if getattr(deleted, "rowcount", 0):
            self.store.remove(relative)

    def _duplicate(self, instance_pk: int, tmp_path: Path | None, calling_ae: str) -> ReceiveResult:
        """Keep the first copy; count and log the repeat."""
        with self.db.write_session() as session:
            session.execute(
                update(Instance)
                .where(Instance.id == instance_pk)
                .values(duplicates=Instance.duplicates + 1, last_duplicate_at=utcnow())
            )
        if tmp_path is not None:
            self.store.discard(tmp_path)
        log.info("duplicate SOP instance received from %s; kept the first", calling_ae)
        return ReceiveResult(Outcome.DUPLICATE, "duplicate", instance_pk)

    def _index(
        self, session: Session, meta: InstanceMeta, relative: str, size: int, calling_ae: str
    ) -> tuple[int, int]:
        cached = self._series_cache.get(meta.series_uid)
        now = utcnow()
        if cached is None:
            series_pk, study_pk = _upsert_series(session, meta, calling_ae, now)
            if len(self._series_cache) > 10000:
                self._series_cache.clear()
            self._series_cache[meta.series_uid] = (series_pk, study_pk)
        # Plain driver statements from here: through SQLAlchemy's statement machinery
        # these two cost several times more CPU, on the path every instance takes.
        sql = FastSQL(session)
        stamp = sql.stamp(now)
        if cached is not None:
            series_pk, study_pk = cached
            sql.update(
                "studies", study_pk, {"last_received_at": stamp, "state": StudyState.RECEIVING}
            )
        instance_pk = sql.insert(
            "instances",
            {
                "sop_instance_uid": meta.sop_instance_uid,
                "series_pk": series_pk,
                "sop_class_uid": meta.sop_class_uid,
                "transfer_syntax": meta.transfer_syntax,
                "instance_number": meta.instance_number,
                "path": relative,
                "size": size,
                "calling_ae": calling_ae,
                "received_at": stamp,
                "duplicates": 0,
            },
        )
        return instance_pk, study_pk


def _upsert_series(
    session: Session, meta: InstanceMeta, calling_ae: str, now: datetime
) -> tuple[int, int]:
    patient_pk = session.execute(
        insert_for(session, Patient.__table__)
        .values(
            patient_id=meta.patient_id,
            issuer=meta.issuer,
            name=meta.patient_name,
            birth_date=meta.birth_date,
            sex=meta.sex,
            updated_at=now,
        )
        .on_conflict_do_update(
            index_elements=["patient_id", "issuer"],
            set_={"updated_at": now},
        )
        .returning(Patient.__table__.c.id)
    ).scalar_one()
    study_pk = session.execute(
        insert_for(session, Study.__table__)
        .values(
            study_uid=meta.study_uid,
            patient_pk=patient_pk,
            accession_number=meta.accession_number,
            study_date=meta.study_date,
            study_time=meta.study_time,
            description=meta.study_description,
            calling_ae=calling_ae,
            state=StudyState.RECEIVING,
            first_received_at=now,
            last_received_at=now,
        )
        .on_conflict_do_update(
            index_elements=["study_uid"],
            set_={"last_received_at": now, "state": StudyState.RECEIVING},
        )
        .returning(Study.__table__.c.id)
    ).scalar_one()
    series_pk = session.execute(
        insert_for(session, Series.__table__)
        .values(
            series_uid=meta.series_uid,
            study_pk=study_pk,
            modality=meta.modality,
            series_number=meta.series_number,
            body_part=meta.body_part,
            station_name=meta.station_name,
            description=meta.series_description,
        )
        .on_conflict_do_update(index_elements=["series_uid"], set_={"modality": meta.modality})
        .returning(Series.__table__.c.id)
    ).scalar_one()
    return int(series_pk), int(study_pk)
