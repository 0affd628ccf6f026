"""Background worker loop: study stability sweep and job handlers, restartable at any point."""

from __future__ import annotations

import logging
import threading

from gateway.core import jobs
from gateway.core.context import ProcessContext
from gateway.core.procutil import STOP_WAIT_S
from gateway.intake.stability import mark_stable

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, service: ProcessContext) -> None:
        self.service = service
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None
        self._in_flight: list[int] = []  # jobs claimed by the handler running now

    def run_once(self) -> int:
        """One pass: sweep studies, then run each handler on its due jobs. Returns work done."""
        settings = self.service.settings
        with self.service.db.write_session() as session:
            stable = mark_stable(session, settings.studies.stable_after_s)
        if stable:
            log.info("%d studies became stable", len(stable))
        done = len(stable)
        for task in list(self.service.periodic):
            done += task(self.service)
        for kind, handler in list(self.service.job_handlers.items()):
            with self.service.db.write_session() as session:
                claimed = [job.id for job in jobs.claim(session, [kind], limit=100)]
            if not claimed:
                continue
            self._in_flight = claimed
            try:
                handler(self.service, claimed)
            except Exception as exc:
                log.exception("job handler %s failed", kind)
                with self.service.db.write_session() as session:
                    jobs.fail(session, claimed, f"{type(exc).__name__}: {exc}", max_attempts=10)
            finally:
                self._in_flight = []
            done += len(claimed)
        return done

    def loop(self) -> None:
        interval = self.service.settings.worker.poll_interval_s
        while not self.stop_event.is_set():
            try:
                busy = self.run_once()
            except Exception:
                log.exception("worker pass failed")
                busy = 0
            if not busy:
                self.stop_event.wait(interval)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.loop, name="worker", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        if self.thread:
            self.thread.join(timeout=STOP_WAIT_S)
            in_flight = self._in_flight
            if self.thread.is_alive() and in_flight:
                # Still waiting for a PACS or an EMR: its jobs are due again at once.
                log.warning("job handler still busy at shutdown: %d jobs put back", len(in_flight))
                with self.service.db.write_session() as session:
                    jobs.release(session, in_flight)
