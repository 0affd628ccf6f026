"""Start-up check of the newest index rows against their files (after a power cut).

The receive path commits an instance's index row while the file's fsync runs
(:meth:`gateway.core.instance_store.InstanceStore.place`) and acknowledges only after
both. A power cut in between can leave a row whose file is short or missing: never
acknowledged, so the modality sends the instance again, but the row must not stand
(its study would be forwarded without it, a re-send would be taken for a duplicate).

At start-up after a run that did not stop cleanly (the store's in-use mark is still
there: :meth:`InstanceStore.mark_in_use`), before the DICOM node accepts associations, the
newest :data:`RECENT` rows (more than every association can have in flight) whose study
was not purged are checked against their files, and broken ones withdrawn
(:meth:`Receiver.withdraw`). After a clean stop nothing is checked: a file changed since
(by hand, by a test) is the PACS's to refuse, not a lost write.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select

from gateway.core.models import Instance, Series, Study
from gateway.intake.receive import Receiver

log = logging.getLogger(__name__)

RECENT = 2000


def start_receiving(receiver: Receiver) -> Callable[[], None]:
    """Check the newest rows if the last run did not stop cleanly, mark this run; returns
    the call that marks its clean stop (once every receiving process has ended)."""
    if receiver.store.mark_in_use():
        withdraw_broken_recent(receiver)
    return receiver.store.mark_stopped


def withdraw_broken_recent(receiver: Receiver, *, recent: int = RECENT) -> int:
    """Withdraw the newest ``recent`` rows whose file is short or missing; how many."""
    with receiver.db.read_session() as session:
        rows = session.execute(
            select(Instance.id, Instance.path, Instance.size)
            .join(Series, Series.id == Instance.series_pk)
            .join(Study, Study.id == Series.study_pk)
            .where(Study.purged_at.is_(None))
            .order_by(Instance.id.desc())
            .limit(recent)
        ).all()
    broken = [(pk, path) for pk, path, size in rows if not receiver.store.intact(path, size)]
    for pk, path in broken:
        receiver.withdraw(pk, path)
    if broken:
        log.warning(
            "withdrew %d indexed instances whose files are short or missing (a power cut "
            "before they were acknowledged: their modalities send them again)",
            len(broken),
        )
    return len(broken)
