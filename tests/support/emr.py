"""An EMR test peer: a real MLLP server (the project's own) in a background thread.

What it receives is read by hl7apy, an independent parser (tests/support/hl7_independent.py),
never by the project's own ``hl7`` parser: the message type by which tests pick messages and
the content they check are what another HL7 implementation sees on the wire.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

from hl7.ack import build_ack
from hl7.mllp_server import MLLPServer
from tests.support.hl7_independent import message_type, text_of
from tests.support.net import free_port


class EmrPeer:
    """Collects the messages it receives and answers each with ``answer`` (AA, AE, AR)."""

    def __init__(self, port: int | None = None, answer: Literal["AA", "AE", "AR"] = "AA") -> None:
        self.port = port or free_port()
        self.answer = answer
        self.received: list[bytes] = []
        self._types: list[str] = []  # MSH-9 of received[i], each read once (polled often)
        self._loop = asyncio.new_event_loop()
        self._server: MLLPServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, raw: bytes, peer: str) -> bytes:
        self.received.append(raw)
        return build_ack(raw, self.answer)

    def start(self) -> EmrPeer:
        self._thread.start()
        self._server = MLLPServer("127.0.0.1", self.port, self._handle)
        asyncio.run_coroutine_threadsafe(self._server.start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def raw_of_type(self, type_and_event: str) -> list[bytes]:
        """The messages received whose MSH-9 reads ``type_and_event`` (``ORU^R01``) to hl7apy."""
        received = list(self.received)
        self._types += [message_type(raw) for raw in received[len(self._types) :]]
        pairs = zip(received, self._types, strict=True)
        return [raw for raw, kind in pairs if kind == type_and_event]

    def messages_of_type(self, type_and_event: str) -> list[str]:
        """The same, as text decoded as their MSH-18 says."""
        return [text_of(raw) for raw in self.raw_of_type(type_and_event)]
