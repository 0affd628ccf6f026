"""MLLP framing (HL7 v2 Minimal Lower Layer Protocol): <VT> payload <FS><CR>.

The decoder defines what happens to everything a peer may send:

- bytes outside a frame (before <VT>, after <FS>) are junk: dropped and counted, except
  the one <CR> that ends a frame;
- a frame ends at <FS>, the following <CR> optional; whatever follows <FS> up to the
  next <VT> is junk;
- a <VT> inside an open frame abandons that frame (counted) and starts a new one: a
  frame without its <FS> is not a message and gets no answer;
- a frame whose payload exceeds ``max_size``: :meth:`FrameDecoder.frames` reads it to
  its <FS> keeping only the first ``max_size`` bytes, and yields it marked truncated
  (a server answers it and carries on); :meth:`FrameDecoder.feed` raises
  :class:`FrameTooLargeError` as soon as that is known (a client waiting for one ACK).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\x0d"
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024

_CR = CARRIAGE_RETURN[0]


class MLLPError(Exception):
    """Framing or transport problem on an MLLP connection."""


class FrameTooLargeError(MLLPError):
    """A frame grew beyond the decoder's ``max_size`` before its end block."""


class Frame(NamedTuple):
    """One frame received whole: its payload, or the first ``max_size`` bytes of it."""

    payload: bytes
    size: int  # bytes between <VT> and <FS>

    @property
    def truncated(self) -> bool:
        """True when the frame was over the limit and ``payload`` is only its start."""
        return self.size > len(self.payload)


def encode_frame(payload: bytes) -> bytes:
    """Wrap one HL7 message in an MLLP frame."""
    if START_BLOCK in payload or END_BLOCK in payload:
        raise MLLPError("payload contains an MLLP block character")
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class FrameDecoder:
    """Incremental MLLP decoder: feed bytes as they arrive, get complete frames.

    Never holds more than ``max_size`` payload bytes (``peak`` records the most it
    held). ``junk_bytes`` and ``abandoned_frames`` count what was discarded, and
    ``frames_started`` the <VT> seen, so a server can time each frame.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_size <= 0:
            raise ValueError("max_size must be positive")
        self.max_size = max_size
        self.peak = 0
        self.junk_bytes = 0
        self.abandoned_frames = 0
        self.frames_started = 0
        self._buf = bytearray()
        self._size = 0
        self._in_frame = False
        self._after_end = False

    @property
    def in_frame(self) -> bool:
        """True between a <VT> and its <FS>."""
        return self._in_frame

    @property
    def pending(self) -> int:
        """Payload bytes held for the frame being received (0 between frames)."""
        return len(self._buf) if self._in_frame else 0

    def frames(self, data: bytes) -> Iterator[Frame]:
        """Consume ``data`` and yield every frame it completes, in order."""
        return self._scan(data, strict=False)

    def feed(self, data: bytes) -> Iterator[bytes]:
        """Consume ``data`` and yield every payload it completes, in order.

        Raises :class:`FrameTooLargeError` once a frame is known to exceed ``max_size``.
        """
        for frame in self._scan(data, strict=True):
            yield frame.payload

    def _start(self) -> None:
        self._buf.clear()
        self._size = 0
        self.frames_started += 1

    def _scan(self, data: bytes, strict: bool) -> Iterator[Frame]:
        pos = 0
        end = len(data)
        while pos < end:
            if not self._in_frame:
                if self._after_end:
                    self._after_end = False
                    if data[pos] == _CR:
                        pos += 1
                        continue
                start = data.find(START_BLOCK, pos)
                self.junk_bytes += (start if start >= 0 else end) - pos
                if start < 0:
                    return
                self._in_frame = True
                self._start()
                pos = start + 1
                continue
            stop = data.find(END_BLOCK, pos)
            chunk_end = stop if stop >= 0 else end
            restart = data.find(START_BLOCK, pos, chunk_end)
            if restart >= 0:
                self.abandoned_frames += 1
                self._start()
                pos = restart + 1
                continue
            length = chunk_end - pos
            room = self.max_size - len(self._buf)
            if length > room and strict:
                self._buf.clear()
                self._in_frame = False
                raise FrameTooLargeError(f"MLLP frame exceeds {self.max_size} bytes")
            if room > 0:
                self._buf += data[pos : pos + min(length, room)]
            self._size += length
            self.peak = max(self.peak, len(self._buf))
            if stop < 0:
                return
            frame = Frame(bytes(self._buf), self._size)
            self._buf.clear()
            self._in_frame = False
            self._after_end = True
            pos = stop + 1
            yield frame
