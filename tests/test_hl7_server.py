"""Asyncio MLLP server and client on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable

import pytest

from hl7.mllp import FrameDecoder, MLLPError, encode_frame
from hl7.mllp_client import MLLPConnection, send
from hl7.mllp_server import MLLPServer, is_allowed, parse_allowed_sources
from hl7.parse import parse

pytestmark = pytest.mark.unit

HOST = "127.0.0.1"


async def echo(payload: bytes, peer: str) -> bytes:
    return b"ACK:" + payload


def run(coro: Awaitable[None]) -> None:
    asyncio.run(asyncio.wait_for(coro, 15))


async def read_frames(reader: asyncio.StreamReader, count: int) -> list[bytes]:
    dec = FrameDecoder()
    out: list[bytes] = []
    while len(out) < count:
        data = await asyncio.wait_for(reader.read(65536), 5)
        if not data:
            break
        out.extend(dec.feed(data))
    return out


def server(handler: Callable[[bytes, str], Awaitable[bytes]] = echo, **kw: object) -> MLLPServer:
    return MLLPServer(HOST, 0, handler, **kw)  # type: ignore[arg-type]


def test_allowed_sources_matching() -> None:
    nets = parse_allowed_sources(["10.0.0.5", "192.168.1.0/24", " ", "::1"])
    assert is_allowed("10.0.0.5", nets) and not is_allowed("10.0.0.6", nets)
    assert is_allowed("192.168.1.77", nets) and is_allowed("::ffff:192.168.1.2", nets)
    assert is_allowed("::1", nets) and not is_allowed("garbage", nets)
    assert is_allowed("8.8.8.8", [])


def test_one_shot_send_and_ephemeral_port() -> None:
    async def main() -> None:
        async with server() as srv:
            assert srv.port != 0
            assert await send(HOST, srv.port, b"MSH|hello", timeout=5) == b"ACK:MSH|hello"

    run(main())


def test_persistent_connection_many_messages_and_nodelay() -> None:
    async def main() -> None:
        async with server() as srv, MLLPConnection(HOST, srv.port, timeout=5) as conn:
            sock = conn._writer.get_extra_info("socket")  # type: ignore[union-attr]
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            for i in range(50):
                assert await conn.send(b"m%d" % i) == b"ACK:m%d" % i
            assert srv.active_connections == 1

    run(main())


def test_concurrent_connections_keep_per_connection_order() -> None:
    active = 0
    peak = 0
    seen: dict[bytes, list[int]] = {}
    overlapped = asyncio.Event()

    async def slow(payload: bytes, peer: str) -> bytes:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        if active > 1:
            overlapped.set()
        client, seq = payload.split(b":")
        seen.setdefault(client, []).append(int(seq))
        # no handler ends before two ran at once: a serial server times out here
        await asyncio.wait_for(overlapped.wait(), 5)
        active -= 1
        return b"ok:" + payload

    async def client(port: int, n: int) -> list[bytes]:
        async with MLLPConnection(HOST, port, timeout=5) as conn:
            return [await conn.send(b"c%d:%d" % (n, i)) for i in range(5)]

    async def main() -> None:
        async with server(slow) as srv:
            results = await asyncio.gather(*(client(srv.port, n) for n in range(20)))
        for n, replies in enumerate(results):
            assert replies == [b"ok:c%d:%d" % (n, i) for i in range(5)]
        assert peak > 1  # connections were served concurrently
        assert all(seqs == [0, 1, 2, 3, 4] for seqs in seen.values())

    run(main())


def test_pipelined_frames_are_handled_one_at_a_time_in_order() -> None:
    active = 0
    overlap = False

    async def handler(payload: bytes, peer: str) -> bytes:
        nonlocal active, overlap
        active += 1
        overlap = overlap or active > 1
        # Deliberate negative check: frame 1 stays 30 ms in its handler, time enough for a
        # server that ran pipelined frames at once to start frame 2; the answers then prove
        # the order. This sleep lets time pass, it does not wait for anything.
        await asyncio.sleep(0.03 if payload == b"1" else 0.001)
        active -= 1
        return b"A" + payload

    async def main() -> None:
        async with server(handler) as srv:
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            writer.write(b"".join(encode_frame(b"%d" % i) for i in range(1, 4)))
            await writer.drain()
            assert await read_frames(reader, 3) == [b"A1", b"A2", b"A3"]
            writer.close()
        assert not overlap

    run(main())


def test_allow_list_refuses_other_sources(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[bytes] = []

    async def handler(payload: bytes, peer: str) -> bytes:
        calls.append(payload)
        return b"ACK"

    async def main() -> None:
        async with server(handler, allowed_sources=["10.0.0.0/8"]) as srv:
            with pytest.raises((MLLPError, ConnectionError)):
                await send(HOST, srv.port, b"MSH|x", timeout=5)
        async with server(handler, allowed_sources=["127.0.0.0/8"]) as srv:
            assert await send(HOST, srv.port, b"MSH|y", timeout=5) == b"ACK"

    with caplog.at_level(logging.WARNING, logger="hl7.mllp_server"):
        run(main())
    assert calls == [b"MSH|y"]
    assert any(
        "refused" in r.getMessage() and "127.0.0.1" in r.getMessage() for r in caplog.records
    )


def test_oversized_frame_answered_ar_and_connection_kept(caplog: pytest.LogCaptureFixture) -> None:
    """Over the limit: read to its end block, AR addressed from its MSH, next one served."""
    calls: list[bytes] = []

    async def handler(payload: bytes, peer: str) -> bytes:
        calls.append(payload)
        return b"ACK"

    big = b"MSH|^~\\&|HIS|H|RIS|R|||ORM^O01|BIG1|P|2.5\rNTE|1||SECRET" + b"x" * 5000

    async def main() -> None:
        async with server(handler, max_message_bytes=1024) as srv:
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            for i in range(0, len(big), 700):  # the end block arrives well after the limit
                writer.write((b"\x0b" if i == 0 else b"") + big[i : i + 700])
            writer.write(b"\x1c\r" + encode_frame(b"y" * 100))
            await writer.drain()
            first, second = await read_frames(reader, 2)
            writer.close()
            assert parse(first, versions=None).get("MSA-1") == "AR"
            assert parse(first, versions=None).get("MSA-2") == "BIG1"
            assert parse(first, versions=None).get("ERR-3") == "207"
            assert second == b"ACK"
            assert srv.peak_frame_bytes == 1024

    with caplog.at_level(logging.DEBUG, logger="hl7.mllp_server"):
        run(main())
    assert calls == [b"y" * 100]
    assert "SECRET" not in caplog.text
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_junk_and_abandoned_frames_dropped_connection_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Junk before a start block, a start block mid-frame, bytes after FS that are not CR."""

    async def main() -> None:
        async with server() as srv:
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            writer.write(b"\x00\xff\xfegarbage\r\n" + b"\x0bhalf a mess")
            writer.write(b"\x0bone\x1cNOT-CR" + encode_frame(b"two"))
            await writer.drain()
            assert await read_frames(reader, 2) == [b"ACK:one", b"ACK:two"]
            writer.close()

    with caplog.at_level(logging.WARNING, logger="hl7.mllp_server"):
        run(main())
    junk = len(b"\x00\xff\xfegarbage\r\n") + len(b"NOT-CR")
    assert any(
        f"{junk} bytes outside frames and 1 frames" in r.getMessage() for r in caplog.records
    )


def test_handler_exception_keeps_listener_and_logs_no_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(payload: bytes, peer: str) -> bytes:
        if b"NGUYEN" in payload:
            raise ValueError("bad patient NGUYEN VAN AN 19850704")
        return b"ACK"

    async def main() -> None:
        async with server(handler) as srv:
            with pytest.raises((MLLPError, ConnectionError)):
                await send(HOST, srv.port, b"PID|1||X||NGUYEN^VAN AN", timeout=5)
            assert await send(HOST, srv.port, b"MSH|fine", timeout=5) == b"ACK"

    with caplog.at_level(logging.DEBUG, logger="hl7.mllp_server"):
        run(main())
    text = "\n".join(r.getMessage() for r in caplog.records) + caplog.text
    assert "ValueError" in text
    assert "NGUYEN" not in text and "19850704" not in text


def test_idle_connection_is_closed() -> None:
    async def main() -> None:
        async with server(idle_timeout_s=0.2) as srv:
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            assert await asyncio.wait_for(reader.read(), 5) == b""
            writer.close()

    run(main())


def test_frame_never_ended_is_closed_even_while_bytes_trickle_in() -> None:
    """A frame must end within idle_timeout_s of its start block, data or not."""
    calls: list[bytes] = []

    async def handler(payload: bytes, peer: str) -> bytes:
        calls.append(payload)
        return b"ACK"

    async def main() -> None:
        async with server(handler, idle_timeout_s=0.5) as srv:
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            writer.write(b"\x0bMSH|never ends")
            closed = asyncio.create_task(reader.read())
            sent = 0
            while not closed.done() and sent < 200:  # bounded by run()'s 15 s as well
                with contextlib.suppress(ConnectionError):
                    writer.write(b"x")
                    await writer.drain()
                sent += 1
                await asyncio.wait([closed], timeout=0.05)
            assert closed.done() and closed.result() == b""
            writer.close()
        assert calls == []

    run(main())


def test_stop_closes_open_connections() -> None:
    async def main() -> None:
        srv = server()
        await srv.start()
        conn = MLLPConnection(HOST, srv.port, timeout=5)
        assert await conn.send(b"a") == b"ACK:a"
        await srv.stop()
        assert srv.active_connections == 0
        with pytest.raises((MLLPError, ConnectionError, OSError)):
            await conn.send(b"b")
        await conn.close()

    run(main())


def test_client_timeout_when_no_answer() -> None:
    async def never(payload: bytes, peer: str) -> bytes:
        await asyncio.Event().wait()  # never set: cancelled when the server stops
        return b""

    async def main() -> None:
        async with server(never) as srv:
            conn = MLLPConnection(HOST, srv.port, timeout=0.2)
            with pytest.raises(TimeoutError):
                await conn.send(b"x")
            assert not conn.connected

    run(main())
