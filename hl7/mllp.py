"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): <VT> payload <FS><CR>."""

from __future__ import annotations

from collections.abc import Iterator

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024


class MLLPError(Exception):
    """Framing or transport problem on an MLLP connection."""


class FrameTooLargeError(MLLPError):
    """A frame grew beyond the decoder's ``max_size`` before its end block."""


def encode_frame(payload: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP frame."""
    if START_BLOCK in payload or END_BLOCK in payload:
        raise MLLPError("payload contains an MLLP block character")
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class FrameDecoder:
    """Incremental MLLP decoder: ``feed`` bytes as they arrive, get complete payloads.

    Bytes outside a frame (before <VT>, including the <CR> after <FS>) are dropped.
    A frame ends at <FS>; the following <CR> is optional. A <VT> inside an open
    frame restarts the frame (the sender abandoned the previous one). A frame whose
    payload exceeds ``max_size`` raises :class:`FrameTooLargeError` as soon as that
    is known, so memory stays bounded; the decoder should then be discarded.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self._buf = bytearray()
        self._in_frame = False

    @property
    def pending(self) -> int:
        """Bytes of the frame currently being received (0 between frames)."""
        return len(self._buf) if self._in_frame else 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Consume ``data`` and yield every payload it completes, in order."""
        pos = 0
        end = len(data)
        while pos < end:
            if not self._in_frame:
                start = data.find(START_BLOCK, pos)
                if start < 0:
                    return
                self._in_frame = True
                self._buf.clear()
                pos = start + 1
                continue
            stop = data.find(END_BLOCK, pos)
            restart = data.find(START_BLOCK, pos, stop if stop >= 0 else end)
            if restart >= 0:
                self._buf.clear()
                pos = restart + 1
                continue
            chunk_end = stop if stop >= 0 else end
            if len(self._buf) + chunk_end - pos > self.max_size:
                self._buf.clear()
                self._in_frame = False
                raise FrameTooLargeError(f"MLLP frame exceeds {self.max_size} bytes")
            self._buf += data[pos:chunk_end]
            if stop < 0:
                return
            payload = bytes(self._buf)
            self._buf.clear()
            self._in_frame = False
            pos = stop + 1
            yield payload
