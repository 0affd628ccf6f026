"""Transport security with real certificates made in the test: DICOM TLS on its own port
(dcmtk ``echoscu``/``storescu +tls``, client certificates required, AE allow-list), HTTPS
for the API (httpx verifying against the test CA) and MLLP over TLS (an ssl-wrapped
client), all on one gateway process."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.core.settings import Settings
from gateway.core.tls import client_context, dicom_server_context, hl7_server_context
from hl7.mllp import FrameDecoder, encode_frame
from tests.fixtures.orders.helpers import ack_code, orm
from tests.support.certs import CertSet, make_certs
from tests.support.ctgen import make_ct_study
from tests.support.gateway_proc import DEFAULT_PEERS, to_toml
from tests.support.net import free_port
from tests.support.tools import require
from tests.support.wait import wait_until

pytestmark = pytest.mark.integration
START = "20261125080000"


def _trust(ca: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca))


@dataclass
class TlsGateway:
    certs: CertSet
    dicom_port: int
    tls_port: int
    http_port: int
    hl7_port: int
    work: Path

    @property
    def api(self) -> str:
        return f"https://127.0.0.1:{self.http_port}"


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    work = tmp_path_factory.mktemp("tlsgw")
    certs = make_certs(work / "certs")
    gw = TlsGateway(certs, free_port(), free_port(), free_port(), free_port(), work)
    tls = {"tls_cert_file": str(certs.server_cert), "tls_key_file": str(certs.server_key)}
    config = {
        "data_dir": str(work / "var"),
        "dicom": {
            "port": gw.dicom_port,
            "tls_port": gw.tls_port,
            "tls_ca_file": str(certs.ca),
            "tls_require_client_cert": True,
            "peers": DEFAULT_PEERS,
            **tls,
        },
        "hl7": {
            "port": gw.hl7_port,
            "tls_ca_file": str(certs.ca),
            "tls_require_client_cert": True,
            **tls,
        },
        "http": {"port": gw.http_port, **tls},
        "forward": {"destinations": []},
        "studies": {"stable_after_s": 1},
    }
    config_path = work / "risgate.toml"
    config_path.write_text(to_toml(config))
    log_path = work / "gateway.log"
    env = dict(os.environ)
    env.pop("RISGATE_CONFIG", None)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config_path), "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {log_path.read_text()[-3000:]}")
            try:
                return httpx.get(f"{gw.api}/healthz", verify=_trust(certs.ca), timeout=2).is_success
            except httpx.HTTPError:
                return False

        wait_until(ready, 60, "the TLS gateway's /healthz", interval=0.2)
        yield gw
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()


def _dcmtk(*args: str) -> subprocess.CompletedProcess[str]:
    require(args[0])
    return subprocess.run(
        list(args),
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, TCP_NODELAY="1"),
    )


def _tls_args(certs: CertSet) -> list[str]:
    return ["+tls", str(certs.client_key), str(certs.client_cert), "+cf", str(certs.ca)]


def test_echoscu_over_tls(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    r = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", *_tls_args(gw.certs),
               "127.0.0.1", str(gw.tls_port))  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout


def test_storescu_over_tls_stores_the_study(tls_gateway: TlsGateway, tmp_path: Path) -> None:
    gw = tls_gateway
    study_uid, files = make_ct_study(tmp_path / "ct", 3, size=64)
    r = _dcmtk("storescu", "-aet", "STORESCU", "-aec", "RISGATE", *_tls_args(gw.certs),
               "127.0.0.1", str(gw.tls_port), *map(str, files))  # fmt: skip
    assert r.returncode == 0, r.stderr + r.stdout
    stored = list((gw.work / "var" / "store" / "instances" / study_uid).rglob("*.dcm"))
    assert len(stored) == 3


def test_plain_port_still_plain(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    plain = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", "127.0.0.1",
                   str(gw.dicom_port))  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    # TLS spoken to the plain port, and plain DICOM to the TLS port, both fail.
    cross = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", "-to", "5",
                   *_tls_args(gw.certs), "127.0.0.1", str(gw.dicom_port))  # fmt: skip
    assert cross.returncode != 0
    cross = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", "-to", "5", "-ta", "5",
                   "127.0.0.1", str(gw.tls_port))  # fmt: skip
    assert cross.returncode != 0


def test_client_without_certificate_refused(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    # +tla: TLS without a client certificate ("anonymous"), server verified.
    r = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", "+tla", "+cf",
               str(gw.certs.ca), "127.0.0.1", str(gw.tls_port))  # fmt: skip
    assert r.returncode != 0


def test_client_certificate_from_another_ca_refused(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    c = gw.certs
    r = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", "+tls",
               str(c.rogue_client_key), str(c.rogue_client_cert), "+cf", str(c.ca),
               "127.0.0.1", str(gw.tls_port))  # fmt: skip
    assert r.returncode != 0


def test_server_not_trusted_without_its_ca(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    c = gw.certs
    r = _dcmtk("echoscu", "-aet", "ECHOSCU", "-aec", "RISGATE", "+tls", str(c.client_key),
               str(c.client_cert), "+cf", str(c.other_ca), "127.0.0.1",
               str(gw.tls_port))  # fmt: skip
    assert r.returncode != 0


def test_allow_list_applies_on_the_tls_port(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    r = _dcmtk("echoscu", "-aet", "UNKNOWN", "-aec", "RISGATE", *_tls_args(gw.certs),
               "127.0.0.1", str(gw.tls_port))  # fmt: skip
    assert r.returncode != 0
    assert "Rejected" in r.stderr + r.stdout


def test_https_api(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    r = httpx.get(f"{gw.api}/healthz", verify=_trust(gw.certs.ca), timeout=10)
    assert r.status_code == 200
    with pytest.raises(httpx.ConnectError):  # certificate from an unknown CA
        httpx.get(f"{gw.api}/healthz", verify=_trust(gw.certs.other_ca), timeout=10)
    with pytest.raises(httpx.HTTPError):  # plain HTTP to the TLS port
        httpx.get(f"http://127.0.0.1:{gw.http_port}/healthz", timeout=5)


def _mllp_exchange(sock: socket.socket, payload: bytes) -> bytes:
    sock.sendall(encode_frame(payload))
    decoder = FrameDecoder()
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before the ACK")
        frames = list(decoder.feed(data))
        if frames:
            return frames[0]


def test_mllp_over_tls(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    c = gw.certs
    ctx = client_context(c.ca, c.client_cert, c.client_key)
    msg = orm(
        "TLS1",
        patient_id="PTLS1",
        name="TRAN^THI B",
        placer="PLTLS1",
        accession="ATLS1",
        start=START,
    )
    with (
        socket.create_connection(("127.0.0.1", gw.hl7_port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        assert ack_code(_mllp_exchange(sock, msg)) == "AA"
    r = httpx.get(
        f"{gw.api}/healthz", verify=_trust(c.ca), timeout=10
    )  # the listener is still serving the rest
    assert r.status_code == 200


def test_mllp_tls_refuses_client_without_certificate(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    ctx = client_context(gw.certs.ca)
    msg = orm(
        "TLS2", patient_id="PTLS2", name="LE^VAN C", placer="PLTLS2", accession="ATLS2", start=START
    )
    with (
        pytest.raises((ssl.SSLError, ConnectionError, OSError)),
        socket.create_connection(("127.0.0.1", gw.hl7_port), timeout=10) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as sock,
    ):
        _mllp_exchange(sock, msg)


def test_mllp_plain_client_gets_nothing(tls_gateway: TlsGateway) -> None:
    gw = tls_gateway
    msg = orm(
        "TLS3", patient_id="PTLS3", name="LE^VAN D", placer="PLTLS3", accession="ATLS3", start=START
    )
    with socket.create_connection(("127.0.0.1", gw.hl7_port), timeout=10) as sock:
        sock.sendall(encode_frame(msg))
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        assert b"MSA" not in data


def test_settings_build_contexts(tmp_path: Path) -> None:
    certs = make_certs(tmp_path)
    s = Settings(data_dir=tmp_path)
    assert dicom_server_context(s.dicom) is None and hl7_server_context(s.hl7) is None
    s = Settings(
        data_dir=tmp_path,
        dicom={"tls_port": 2762, "tls_cert_file": certs.server_cert,
               "tls_key_file": certs.server_key, "tls_ca_file": certs.ca,
               "tls_require_client_cert": True},
    )  # fmt: skip
    ctx = dicom_server_context(s.dicom)
    assert ctx is not None and ctx.verify_mode == ssl.CERT_REQUIRED
    s = Settings(data_dir=tmp_path, dicom={"tls_port": 2762})
    with pytest.raises(ValueError, match="tls_cert_file"):
        dicom_server_context(s.dicom)
    s = Settings(
        data_dir=tmp_path,
        hl7={"tls_cert_file": certs.server_cert, "tls_key_file": certs.server_key,
             "tls_require_client_cert": True},
    )  # fmt: skip
    with pytest.raises(ValueError, match="CA"):
        hl7_server_context(s.hl7)


def test_mllp_client_over_tls_as_the_notify_job_sends(tmp_path: Path) -> None:
    """hl7.mllp_client.send with the context notify builds (``notify.tls``) against an
    MLLPServer with a server context; an untrusted server is refused."""
    import asyncio

    from gateway.core.settings import NotifySettings
    from gateway.core.tls import notify_client_context, server_context
    from hl7 import mllp_client
    from hl7.mllp_server import MLLPServer

    certs = make_certs(tmp_path)
    received: list[bytes] = []

    async def handler(raw: bytes, peer: str) -> bytes:
        received.append(raw)
        return b"MSH|^~\\&|EMR||RISGATE||20261125||ACK|1|P|2.5\rMSA|AA|1\r"

    async def main() -> None:
        server = MLLPServer(
            "127.0.0.1", 0, handler, ssl_context=server_context(certs.server_cert, certs.server_key)
        )
        async with server:
            good = notify_client_context(NotifySettings(tls=True, tls_ca_file=certs.ca))
            ack = await mllp_client.send("127.0.0.1", server.port, b"MSH|x\r", 10, good)
            assert b"MSA|AA" in ack
            bad = notify_client_context(NotifySettings(tls=True, tls_ca_file=certs.other_ca))
            with pytest.raises(ssl.SSLError):
                await mllp_client.send("127.0.0.1", server.port, b"MSH|y\r", 10, bad)
        assert received == [b"MSH|x\r"]

    assert notify_client_context(NotifySettings()) is None
    asyncio.run(main())
