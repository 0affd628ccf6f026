"""An EMR test peer: a real MLLP server (the project's own) in a background thread."""

from __future__ import annotations

import asyncio
import threading
from typing import Literal

from hl7.ack import build_ack
from hl7.mllp_server import MLLPServer
from tests.support.net import free_port


class EmrPeer:
    """Collects the messages it receives and answers each with ``answer`` (AA, AE, AR)."""

    def __init__(self, port: int | None = None, answer: Literal["AA", "AE", "AR"] = "AA") -> None:
        self.port = port or free_port()
        self.answer = answer
        self.received: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._server: MLLPServer | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    async def _handle(self, raw: bytes, peer: str) -> bytes:
        self.received.append(raw)
        return build_ack(raw, self.answer)  # type: ignore[arg-type]

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

    def messages_of_type(self, message_type: str) -> list[str]:
        texts = [m.decode("utf-8") for m in self.received]
        return [t for t in texts if f"|{message_type}" in t.split("\r", 1)[0]]
