"""Internal events, made durable: an event enqueues one job per subscribed job kind.

Every subscription is in the table below, the one place to read who reacts to what. It is
data, not import side effects: a process emits to the same subscribers whatever modules it
imported. Each job kind's handler is installed by ``gateway.process.wiring``
(``tests/test_events.py`` checks that every subscribed kind has one). Emitting runs inside
the caller's transaction, so an event is never lost nor seen half-done.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from gateway.core import jobs

STUDY_STABLE = "study.stable"  # no instance arrived for stable_after_s, or MPPS COMPLETED
STUDY_VERIFIED = "study.verified"  # every destination holds every instance
STUDY_RELINKED = "study.relinked"  # a person linked the study to an order
PATIENT_CHANGED = "patient.changed"  # ADT update, merge or identifier change
FILMS_REPORTED = "study.films_reported"  # MPPS Film Consumption Sequence recorded

SUBSCRIBERS: Mapping[str, tuple[str, ...]] = {
    # costing/handlers, intake/thumbnails, forwarding/verify
    STUDY_STABLE: ("cost", "thumbnail", "verify"),
    # results/notify: the ORU to the EMR
    STUDY_VERIFIED: ("notify",),
    # costing/handlers (cost again), reconciliation/resend (correct what the PACS holds)
    STUDY_RELINKED: ("cost_retry", "resend"),
    # reconciliation/resend: new demographics for the patient's studies
    PATIENT_CHANGED: ("patient_sync",),
    # costing/handlers: film or PACS price
    FILMS_REPORTED: ("cost_retry",),
}


def emit(session: Session, event: str, ref: str) -> None:
    for kind in SUBSCRIBERS[event]:
        jobs.enqueue(session, kind, ref)
