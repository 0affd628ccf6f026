"""Internal events, made durable: an event enqueues one job per subscribed job kind.

Subscribers register at import time (``subscribe("study.stable", "verify")``); emitting
runs inside the caller's transaction, so an event is never lost nor seen half-done.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy.orm import Session

from gateway.core import jobs

STUDY_STABLE = "study.stable"
STUDY_VERIFIED = "study.verified"  # every destination holds every instance
STUDY_RELINKED = "study.relinked"  # a person linked the study to an order
PATIENT_CHANGED = "patient.changed"  # ADT update, merge or identifier change
FILMS_REPORTED = "study.films_reported"  # MPPS Film Consumption Sequence recorded

_subscribers: dict[str, list[str]] = defaultdict(list)


def subscribe(event: str, job_kind: str) -> None:
    if job_kind not in _subscribers[event]:
        _subscribers[event].append(job_kind)


def unsubscribe(event: str, job_kind: str) -> None:
    if job_kind in _subscribers[event]:
        _subscribers[event].remove(job_kind)


def emit(session: Session, event: str, ref: str) -> None:
    for kind in _subscribers[event]:
        jobs.enqueue(session, kind, ref)
