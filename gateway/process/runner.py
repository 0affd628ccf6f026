"""Process runner for ``risgate serve``: every role in one process, or chosen roles.

Roles: ``dicom`` (DIMSE services; with ``dicom.processes`` > 1 this process accepts the
connections and hands each to the least busy receiver process, itself included),
``hl7`` (MLLP listener), ``api`` (HTTP), ``worker`` (background jobs). Child processes
die with their parent (PR_SET_PDEATHSIG), so a killed gateway never leaves a receiver
holding the port.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
from collections.abc import Callable

import uvicorn

from gateway.core.logs import setup_logging
from gateway.core.procutil import STOP_WAIT_S, die_with_parent, install_stop_handlers
from gateway.core.settings import Settings
from gateway.process.startup import create_context, upgrade_in_child
from gateway.process.wiring import (
    dicom_services,
    install_job_handlers,
    install_receive_hooks,
    start_forwarding,
)
from gateway.process.worker import Worker

log = logging.getLogger(__name__)

ROLES = ("dicom", "hl7", "api", "worker")


def _start_dicom_child(settings: Settings, handoff: socket.socket) -> subprocess.Popen[bytes]:
    """One more receiver process; a plain subprocess, lighter than multiprocessing's.
    It is handed connections over ``handoff`` (see :mod:`dicom_nodes.dispatch`)."""
    fd = handoff.fileno()
    child = subprocess.Popen(
        [sys.executable, "-m", "gateway.process.dicom_child", "--handoff-fd", str(fd)],
        stdin=subprocess.PIPE,
        pass_fds=(fd,),
        preexec_fn=die_with_parent,
    )
    assert child.stdin is not None
    child.stdin.write(settings.model_dump_json().encode())
    child.stdin.close()
    return child


def serve(settings: Settings, roles: list[str]) -> None:
    setup_logging(settings.log.level, settings.log.json_format)
    stop_requested = install_stop_handlers()
    if "dicom" in roles or "worker" in roles:
        from dicom_nodes import fast_path

        try:
            fast_path.configure(settings.dicom.fast_path)
        except fast_path.FastPathRefused as exc:
            raise SystemExit(f"risgate: {exc}") from None
    upgrade_in_child(settings)  # Alembic never resident in this long-running process
    service = create_context(settings, migrate=False)
    removed = service.store.clean_tmp()
    if removed:
        log.info("removed %d unacknowledged temp files", removed)
    install_receive_hooks(service)
    mark_clean_stop: Callable[[], None] | None = None
    if "dicom" in roles:
        from gateway.intake.recovery import start_receiving

        mark_clean_stop = start_receiving(service.receiver)  # before any association
    if "worker" in roles:
        install_job_handlers(service)  # only the worker runs them
    stoppers: list[Callable[[], None]] = []
    children: list[subprocess.Popen[bytes]] = []

    if "dicom" in roles:
        from dicom_nodes.dispatch import Dispatcher, channel_pair
        from dicom_nodes.server import start_dicom_server
        from gateway.core.tls import dicom_server_context

        channels = []
        for _ in range(settings.dicom.processes - 1):
            main_end, child_end = channel_pair()
            children.append(_start_dicom_child(settings, child_end))
            child_end.close()
            channels.append(main_end)
        dispatcher = Dispatcher(channels, service.receiver.notify_stored) if channels else None
        server = start_dicom_server(
            settings.dicom, service.receiver, dicom_services(service), dispatcher=dispatcher
        )
        stoppers.append(server.shutdown)
        if dispatcher is not None:
            stoppers.append(dispatcher.close)
        if settings.dicom.tls_port is not None:
            tls_server = start_dicom_server(
                settings.dicom,
                service.receiver,
                dicom_services(service),
                ssl_context=dicom_server_context(settings.dicom),
            )
            stoppers.append(tls_server.shutdown)
    if "hl7" in roles:
        from gateway.process.wiring import start_hl7

        stoppers.append(start_hl7(service))
    if "worker" in roles:
        worker = Worker(service)
        worker.start()
        stoppers.append(worker.stop)
        stoppers.append(start_forwarding(service))

    try:
        if "api" in roles:
            from gateway.process.http_app import create_app

            config = uvicorn.Config(
                create_app(service),
                host=settings.http.host,
                port=settings.http.port,
                log_config=None,
                access_log=False,
                ssl_certfile=settings.http.tls_cert_file,
                ssl_keyfile=settings.http.tls_key_file,
                timeout_graceful_shutdown=STOP_WAIT_S,  # a request waiting on a PACS
            )
            uvicorn.Server(config).run()
        else:
            stop_requested.wait()
    finally:
        for stop in reversed(stoppers):
            try:
                stop()
            except Exception:
                log.exception("error while stopping")
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        if mark_clean_stop is not None:
            mark_clean_stop()
        service.close()
