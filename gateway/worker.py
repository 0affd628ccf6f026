"""Background worker loop: study stability sweep and job handlers, restartable at any point."""

from __future__ import annotations

import logging
import threading

from gateway import jobs
from gateway.service import Service
from gateway.studies import mark_stable

log = logging.getLogger(__name__)


class Worker:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.stop_event = threading.Event()
        self.thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One pass: sweep studies, then run each handler on its due jobs. Returns work done."""
        settings = self.service.settings
        with self.service.db.session() as session:
            stable = mark_stable(session, settings.studies.stable_after_s)
        if stable:
            log.info("%d studies became stable", len(stable))
        done = len(stable)
        for task in list(self.service.periodic):
            done += task(self.service)
        for kind, handler in list(self.service.job_handlers.items()):
            with self.service.db.session() as session:
                claimed = [job.id for job in jobs.claim(session, [kind], limit=100)]
            if not claimed:
                continue
            try:
                handler(self.service, claimed)
            except Exception as exc:
                log.exception("job handler %s failed", kind)
                with self.service.db.session() as session:
                    jobs.fail(session, claimed, f"{type(exc).__name__}: {exc}", max_attempts=10)
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
            self.thread.join(timeout=10)
