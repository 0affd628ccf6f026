"""The gateway's DICOM node: one AE serving every DIMSE service, started per process.

It is handed what it serves: the receive path for C-STORE
(:class:`dicom_nodes.ports.InstanceSink`), the extra services already bound to the
application, and the TLS context of the TLS port.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
from collections.abc import Callable

from pynetdicom import _config, evt
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicom_nodes import fast_path
from dicom_nodes.association_policy import AssociationPolicy, PolicyAE
from dicom_nodes.config import DicomSettings
from dicom_nodes.dispatch import DONE, Dispatcher, StoredReporter, receive_handed, report
from dicom_nodes.ports import InstanceSink
from dicom_nodes.storage import StorageSCP, storage_contexts
from dicom_nodes.transport import FastAssociationServer, HandedConnectionServer
from dicom_nodes.verification import handle_echo

log = logging.getLogger(__name__)

# Extra services (worklist, MPPS, storage commitment) register here: (contexts, handlers).
ServiceSpec = tuple[list[PresentationContext], list[tuple[object, object]]]


def _accept_any_uid(value: str) -> tuple[bool, str]:
    return True, ""


def build_ae(
    settings: DicomSettings,
    extra: list[ServiceSpec] | None = None,
    is_full: Callable[[], bool] = lambda: False,
) -> PolicyAE:
    ae = PolicyAE(settings.ae_title, AssociationPolicy(settings), is_full)
    ae.maximum_pdu_size = settings.max_pdu
    ae.maximum_associations = settings.max_associations
    ae.require_called_aet = settings.require_called_ae
    ae.network_timeout = settings.network_timeout_s
    ae.dimse_timeout = settings.dimse_timeout_s
    ae.acse_timeout = settings.acse_timeout_s
    ae.add_supported_context(Verification)
    for cx in storage_contexts():
        ae.add_supported_context(str(cx.abstract_syntax), cx.transfer_syntax)
    for contexts, _handlers in extra or []:
        for cx in contexts:
            ae.add_supported_context(str(cx.abstract_syntax), cx.transfer_syntax)
    return ae


def start_dicom_server(
    settings: DicomSettings,
    receiver: InstanceSink,
    extra: list[ServiceSpec] | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    dispatcher: Dispatcher | None = None,
    handoff: socket.socket | None = None,
) -> FastAssociationServer:
    """Start a non-blocking association server on ``settings.host:port``, or with an
    ``ssl_context`` (from the ``dicom.tls_*`` certificates) on ``settings.tls_port``
    (same AE policy).

    Several receiver processes: the main one passes its ``dispatcher`` (it hands
    connections to the others); the others pass their ``handoff`` channel and do not
    listen themselves (:mod:`dicom_nodes.dispatch`).
    """
    fast = fast_path.enabled()
    _config.STORE_RECV_CHUNKED_DATASET = True
    # pynetdicom would abort the association on a non-conformant UID in a command;
    # the gateway validates UIDs itself and answers with a failure status instead.
    _config.VALIDATORS["UI"] = _accept_any_uid
    # Chunked datasets land in the store's tmp dir: same file system as the final place.
    fast_path.bind_received_temp_files(receiver.store.tmp_dir)
    ae = build_ae(settings, extra, receiver.disk_full)
    storage = StorageSCP(receiver)
    handlers: list[tuple[object, object]] = [
        (evt.EVT_C_ECHO, handle_echo),
        (evt.EVT_C_STORE, storage.handle_store),
        (evt.EVT_CONN_CLOSE, storage.handle_conn_close),
    ]
    for _contexts, extra_handlers in extra or []:
        handlers.extend(extra_handlers)
    port = settings.port
    tls = ssl_context is not None
    if tls:
        if settings.tls_port is None:
            raise ValueError("dicom.tls_port is not set")
        port = settings.tls_port
    server = ae.make_server(
        (settings.host, port),
        evt_handlers=handlers,  # type: ignore[arg-type]
        ssl_context=ssl_context,
        server_class=FastAssociationServer if handoff is None else HandedConnectionServer,
        fast=fast,
    )
    assert isinstance(server, FastAssociationServer)
    ae._servers.append(server)  # so server.shutdown() finds it, as with ae.start_server()
    target: Callable[[], None]
    if handoff is not None:
        channel = handoff
        server.on_connection_done = functools.partial(report, channel, DONE)
        receiver.on_stored.append(StoredReporter(channel))
        target = functools.partial(receive_handed, channel, server.process_request)
        name = "dicom-handoff"
    else:
        server.dispatcher = dispatcher
        target = server.serve_forever
        name = "dicom-tls-acceptor" if tls else "dicom-acceptor"
    threading.Thread(target=target, name=name, daemon=True).start()
    log.info(
        "DICOM node %s listening on %s:%s%s (%s)",
        settings.ae_title,
        settings.host,
        server.server_address[1],
        " (TLS)" if tls else "",
        "fast path" if fast else "stock pynetdicom",
    )
    return server
