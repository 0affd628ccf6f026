"""Asyncio MLLP listener: frames in, handler call, framed ACK out, one message at a time."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

from hl7.inbound import receive_oversize
from hl7.mllp import DEFAULT_MAX_MESSAGE_BYTES, Frame, FrameDecoder, encode_frame

logger = logging.getLogger(__name__)

Handler = Callable[[bytes, str], Awaitable[bytes]]
# (kept start of the message, its full size, peer) -> ACK
OversizeHandler = Callable[[bytes, int, str], Awaitable[bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

READ_CHUNK = 65536


def parse_allowed_sources(sources: Iterable[str]) -> list[Network]:
    """Turn IPs and CIDRs (``10.0.0.5``, ``10.1.0.0/16``, ``::1``) into networks."""
    return [ipaddress.ip_network(s.strip(), strict=False) for s in sources if s.strip()]


def is_allowed(peer_ip: str, networks: list[Network]) -> bool:
    """True when ``networks`` is empty or contains ``peer_ip`` (IPv4-mapped IPv6 too)."""
    if not networks:
        return True
    try:
        addr = ipaddress.ip_address(peer_ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


class MLLPServer:
    """MLLP server calling ``handler(raw_message, peer_ip) -> raw_ack`` per message.

    Each connection is served by its own task; messages of one connection are
    handled strictly in order, the next one read only after the ACK was written.
    Peers outside ``allowed_sources`` (empty = any) are closed at connect. A frame
    over ``max_message_bytes`` is read to its end keeping only its first
    ``max_message_bytes`` (memory stays bounded) and answered by ``oversize_handler``
    (default: the AR of :func:`hl7.inbound.receive_oversize`); the connection stays
    open. Junk outside frames and frames abandoned by a new start block are dropped
    (see :mod:`hl7.mllp`) and counted in one log line when the connection ends. A
    handler exception (logged without message content) closes the connection, and
    so do ``idle_timeout_s`` seconds without data, or a frame not ended within
    ``idle_timeout_s`` of its start block. An empty ACK means "send nothing".
    With ``ssl_context`` every connection is TLS (MLLP over TLS, IHE ITI TF-2 "Secure
    Node"); a failed handshake closes the connection before the handler sees anything.
    """

    def __init__(
        self,
        host: str,
        port: int,
        handler: Handler,
        allowed_sources: Iterable[str] = (),
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout_s: float = 300.0,
        ssl_context: ssl.SSLContext | None = None,
        oversize_handler: OversizeHandler | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self._requested_port = port
        self.handler = handler
        self.oversize_handler = oversize_handler or self._refuse_oversize
        # The most payload bytes a connection's decoder held (besides one READ_CHUNK read).
        self.peak_frame_bytes = 0
        self.allowed = parse_allowed_sources(allowed_sources)
        self.max_message_bytes = max_message_bytes
        self.idle_timeout_s = idle_timeout_s
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one when constructed with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        """Number of connections currently being served."""
        return len(self._connections)

    async def start(self) -> None:
        """Bind and start accepting connections."""
        if self._server is not None:
            raise RuntimeError("MLLPServer already started")
        self._server = await asyncio.start_server(
            self._on_connect,
            self.host,
            self._requested_port,
            reuse_address=True,
            ssl=self.ssl_context,
            ssl_handshake_timeout=self.idle_timeout_s if self.ssl_context else None,
        )
        tls = " (TLS)" if self.ssl_context else ""
        logger.info("MLLP listener on %s:%d%s", self.host, self.port, tls)

    async def stop(self) -> None:
        """Stop accepting, close every open connection and wait for their tasks."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        tasks = list(self._connections)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()
        logger.info("MLLP listener on %s stopped", self.host)

    async def __aenter__(self) -> MLLPServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        peer_ip = str(peer[0]) if peer else ""
        if not is_allowed(peer_ip, self.allowed):
            logger.warning("MLLP connection from %s refused: not in allowed sources", peer_ip)
            return
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        decoder = FrameDecoder(self.max_message_bytes)
        try:
            await self._read_frames(decoder, reader, writer, peer_ip)
        finally:
            self.peak_frame_bytes = max(self.peak_frame_bytes, decoder.peak)
            if decoder.junk_bytes or decoder.abandoned_frames:
                logger.warning(
                    "MLLP connection from %s: %d bytes outside frames and %d frames"
                    " without an end block discarded",
                    peer_ip,
                    decoder.junk_bytes,
                    decoder.abandoned_frames,
                )

    async def _read_frames(
        self,
        decoder: FrameDecoder,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer_ip: str,
    ) -> None:
        """Read and answer frames until the peer leaves, times out or a handler fails."""
        loop = asyncio.get_running_loop()
        frame_number, frame_since = 0, 0.0
        while True:
            deadline = loop.time() + self.idle_timeout_s
            if decoder.in_frame:
                if decoder.frames_started != frame_number:
                    frame_number, frame_since = decoder.frames_started, loop.time()
                deadline = min(deadline, frame_since + self.idle_timeout_s)
            try:
                async with asyncio.timeout_at(deadline):
                    data = await reader.read(READ_CHUNK)
            except TimeoutError:
                state = "inside a frame" if decoder.in_frame else "idle"
                logger.info("MLLP connection from %s closed: timeout %s", peer_ip, state)
                return
            except ConnectionError:
                return
            if not data:
                return
            for frame in decoder.frames(data):
                if not await self._answer(frame, peer_ip, writer):
                    return
            self.peak_frame_bytes = max(self.peak_frame_bytes, decoder.peak)

    async def _refuse_oversize(self, prefix: bytes, size: int, peer_ip: str) -> bytes:
        return receive_oversize(prefix, size, self.max_message_bytes).ack()

    async def _answer(self, frame: Frame, peer_ip: str, writer: asyncio.StreamWriter) -> bool:
        """Run the handler and write its ACK; False when the connection must close."""
        try:
            if frame.truncated:
                logger.warning(
                    "MLLP frame from %s of %d bytes over %d: refused",
                    peer_ip,
                    frame.size,
                    self.max_message_bytes,
                )
                ack = await self.oversize_handler(frame.payload, frame.size, peer_ip)
            else:
                ack = await self.handler(frame.payload, peer_ip)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Only the type: an exception's text may quote patient data.
            logger.error(
                "MLLP handler failed (%s) for a message from %s: connection closed",
                type(exc).__name__,
                peer_ip,
            )
            return False
        if ack:
            try:
                writer.write(encode_frame(ack))
                await writer.drain()
            except ConnectionError:
                return False
            except Exception as exc:
                logger.error("MLLP ACK to %s not sent (%s)", peer_ip, type(exc).__name__)
                return False
        return True
