"""An extra DICOM receiver process (``dicom.processes`` > 1), started by ``risgate serve``.

It reads its settings as JSON on stdin (so no secret shows in its command line or
environment), serves the plain DICOM connections the main process hands it over the
Unix socket named by ``--handoff-fd`` (:mod:`dicom_nodes.dispatch`), binds the TLS port
(if any) with SO_REUSEPORT, and dies with its parent.

It receives, indexes and answers DIMSE; it never decodes pixel data (thumbnails and
coercion run in the worker). pydicom imports numpy whenever it is installed (about
17 MB resident), so this process hides numpy before importing pydicom: pydicom then
runs as it does without numpy. The gateway modules are imported in :func:`main`, after
that, for the same reason.
"""

from __future__ import annotations

import argparse
import socket
import sys


def main() -> None:
    sys.modules.setdefault("numpy", None)  # type: ignore[arg-type] # hidden: see above
    from gateway.core.logs import setup_logging
    from gateway.core.procutil import die_with_parent, install_stop_handlers
    from gateway.core.settings import Settings
    from gateway.process.startup import create_context
    from gateway.process.wiring import dicom_services, install_receive_hooks

    die_with_parent()
    settings = Settings.model_validate_json(sys.stdin.read())
    setup_logging(settings.log.level, settings.log.json_format)
    stop = install_stop_handlers()
    from dicom_nodes import fast_path

    fast_path.configure(settings.dicom.fast_path)
    service = create_context(settings, migrate=False)
    install_receive_hooks(service)  # the same receive hooks; job handlers run in the worker
    from dicom_nodes.server import start_dicom_server
    from gateway.core.tls import dicom_server_context

    parser = argparse.ArgumentParser(prog="gateway.process.dicom_child")
    parser.add_argument("--handoff-fd", type=int, required=True)
    handoff = socket.socket(fileno=parser.parse_args().handoff_fd)
    servers = [
        start_dicom_server(
            settings.dicom, service.receiver, dicom_services(service), handoff=handoff
        )
    ]
    if settings.dicom.tls_port is not None:
        servers.append(
            start_dicom_server(
                settings.dicom,
                service.receiver,
                dicom_services(service),
                ssl_context=dicom_server_context(settings.dicom),
            )
        )
    stop.wait()
    for server in servers:
        server.shutdown()
    handoff.close()
    service.close()


if __name__ == "__main__":
    main()
