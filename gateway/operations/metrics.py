"""Prometheus ``/metrics``: counts read from the database at scrape time, plus latencies.

The DICOM role may run in several processes, so nothing is counted in process memory for
it: instances, forward jobs, queue depth, studies and HL7 messages come from the database
when Prometheus scrapes (every process writes there anyway). HTTP request latency is
measured in the API process, which serves ``/metrics`` itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.core.context import ProcessContext
from gateway.core.models import Instance, Job, JobState, Study, StudyForward, utcnow


class DatabaseCollector(Collector):
    """Gauges and counters computed with a few aggregate queries per scrape."""

    def __init__(self, service: ProcessContext) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        from gateway.orders.models import HL7MessageRow

        with self.service.db.read_session() as session:
            received = session.scalar(select(func.count(Instance.id))) or 0
            duplicates = session.scalar(select(func.coalesce(func.sum(Instance.duplicates), 0)))
            job_rows = session.execute(
                select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
            ).all()
            study_rows = session.execute(
                select(Study.state, func.count()).group_by(Study.state)
            ).all()
            hl7_rows = session.execute(
                select(HL7MessageRow.message_type, HL7MessageRow.ack_code, func.count()).group_by(
                    HL7MessageRow.message_type, HL7MessageRow.ack_code
                )
            ).all()
            since = utcnow() - timedelta(hours=24)
            latency_rows = session.execute(
                select(Study.first_received_at, StudyForward.verified_at)
                .join(StudyForward, StudyForward.study_pk == Study.id)
                .where(StudyForward.verified_at.is_not(None), StudyForward.verified_at >= since)
                .limit(10_000)
            ).all()
        c = CounterMetricFamily("risgate_instances_received", "DICOM instances stored")
        c.add_metric([], float(received))
        yield c
        d = CounterMetricFamily("risgate_instances_duplicate", "duplicate C-STOREs answered")
        d.add_metric([], float(duplicates or 0))
        yield d
        forwarded = CounterMetricFamily(
            "risgate_instances_forwarded", "instance sends by destination state", labels=["state"]
        )
        done = sum(n for k, s, n in job_rows if k == "forward" and s == JobState.DONE)
        dead = sum(n for k, s, n in job_rows if k == "forward" and s == JobState.DEAD)
        forwarded.add_metric(["done"], float(done))
        yield forwarded
        failed = GaugeMetricFamily("risgate_instances_failed", "instance sends given up (DEAD)")
        failed.add_metric([], float(dead))
        yield failed
        depth = GaugeMetricFamily(
            "risgate_queue_jobs", "jobs by kind and state", labels=["kind", "state"]
        )
        for kind, state, n in job_rows:
            depth.add_metric([kind, state], float(n))
        yield depth
        studies = GaugeMetricFamily("risgate_studies", "studies by state", labels=["state"])
        for state, n in study_rows:
            studies.add_metric([state], float(n))
        yield studies
        hl7 = CounterMetricFamily(
            "risgate_hl7_messages", "HL7 messages by type and ACK code", labels=["type", "ack"]
        )
        for mtype, ack, n in hl7_rows:
            hl7.add_metric([mtype or "", ack or ""], float(n))
        yield hl7
        lat = GaugeMetricFamily(
            "risgate_forward_latency_seconds",
            "first instance received -> verified in the PACS, studies verified in the last 24 h",
            labels=["quantile"],
        )
        values = sorted((v - r).total_seconds() for r, v in latency_rows if v and r)
        if values:
            for q in (0.5, 0.9, 0.99):
                lat.add_metric([str(q)], values[min(len(values) - 1, int(q * len(values)))])
        yield lat


class Metrics:
    """One registry per app: the database collector and the HTTP latency histogram."""

    def __init__(self, service: ProcessContext) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(DatabaseCollector(service))
        self.http = Histogram(
            "risgate_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    def asgi(self, app: ASGIApp) -> ASGIApp:
        """Wrap ``app``: observe each HTTP request's latency by route template."""

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = [500]

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                path = scope.get("state", {}).get("route_template", "unmatched")
                self.http.labels(scope["method"], path, str(status[0])).observe(
                    time.perf_counter() - start
                )

        return measured
