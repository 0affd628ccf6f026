"""Asyncio MLLP client: one-shot ``send`` and a persistent :class:`MLLPConnection`."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl

from hl7.mllp import DEFAULT_MAX_MESSAGE_BYTES, FrameDecoder, MLLPError, encode_frame

READ_CHUNK = 65536


class MLLPConnection:
    """One TCP connection used for many request/ACK exchanges, one at a time.

    ``send`` connects on first use (and again after a failure closed the
    connection); any error or timeout closes the connection before it propagates,
    so the caller can simply retry. TCP_NODELAY is set on the socket. With
    ``ssl_context`` the connection is TLS, the server checked against ``host``.
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float = 30.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.ssl_context = ssl_context
        self.port = port
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._decoder = FrameDecoder(max_message_bytes)
        self._pending: list[bytes] = []
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        """True while a connection is open."""
        return self._writer is not None and not self._writer.is_closing()

    async def connect(self) -> None:
        """Open the connection if it is not open yet."""
        if self.connected:
            return
        await self.close()
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, ssl=self.ssl_context), self.timeout
        )
        sock = writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader, self._writer = reader, writer
        self._decoder = FrameDecoder(self.max_message_bytes)
        self._pending = []

    async def close(self) -> None:
        """Close the connection (no-op when closed)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def send(self, payload: bytes, timeout: float | None = None) -> bytes:
        """Send one message and return the payload of the next frame received."""
        async with self._lock:
            try:
                return await asyncio.wait_for(self._exchange(payload), timeout or self.timeout)
            except BaseException:
                await self.close()
                raise

    async def _exchange(self, payload: bytes) -> bytes:
        await self.connect()
        assert self._writer is not None and self._reader is not None
        self._writer.write(encode_frame(payload))
        await self._writer.drain()
        while not self._pending:
            data = await self._reader.read(READ_CHUNK)
            if not data:
                raise MLLPError("connection closed by peer before an answer")
            self._pending.extend(self._decoder.feed(data))
        return self._pending.pop(0)

    async def __aenter__(self) -> MLLPConnection:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def send(
    host: str,
    port: int,
    payload: bytes,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """Open a connection (TLS with ``ssl_context``), send ``payload`` framed, return the
    answer, close."""
    conn = MLLPConnection(host, port, timeout=timeout, ssl_context=ssl_context)
    try:
        return await conn.send(payload, timeout)
    finally:
        await conn.close()
