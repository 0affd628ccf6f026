"""One call for an inbound message: parse, interpret, and the ACK to send; never raises.

:func:`receive` takes a whole message; :func:`receive_oversize` the kept start of one
over the size limit, which is refused with AR.
"""

from __future__ import annotations

from dataclasses import dataclass

from hl7.ack import build_ack
from hl7.errors import APPLICATION_INTERNAL_ERROR, AckCode, HL7Error
from hl7.interpret import interpret
from hl7.message import Message
from hl7.model import Interpreted
from hl7.parse import complete_header, parse


@dataclass(frozen=True, slots=True)
class Inbound:
    """Outcome of :func:`receive`: ``result`` when accepted, else ``error``.

    ``size`` is the length of the message received; more than ``len(raw)`` when only
    its start was kept (:func:`receive_oversize`).
    """

    raw: bytes
    message: Message | None
    result: Interpreted | None
    error: HL7Error | None
    size: int | None = None

    @property
    def truncated(self) -> bool:
        """True when ``raw`` is only the start of the message."""
        return self.size is not None and self.size > len(self.raw)

    @property
    def accepted(self) -> bool:
        """True when the message parsed and mapped without error."""
        return self.error is None and self.result is not None

    def ack(
        self, code: AckCode | None = None, error: HL7Error | None = None, text: str | None = None
    ) -> bytes:
        """ACK bytes: AA when accepted, else AE/AR with ERR (``error`` overrides)."""
        source: Message | bytes | None = self.message
        if source is None and not self.truncated:
            source = self.raw
        return build_ack(source, code, error or self.error, text=text)


def receive(
    raw: bytes, *, default_charset: str = "utf-8", fallback_charset: str | None = None
) -> Inbound:
    """Parse and interpret ``raw``; HL7 problems end up in ``Inbound.error``."""
    msg: Message | None = None
    try:
        msg = parse(raw, default_charset=default_charset, fallback_charset=fallback_charset)
        return Inbound(raw, msg, interpret(msg), None)
    except HL7Error as err:
        return Inbound(raw, msg, None, err)


def receive_oversize(prefix: bytes, size: int, limit: int) -> Inbound:
    """A message of ``size`` bytes over ``limit``, of which ``prefix`` was kept: AR.

    Rejected without reading its content (MSA-1 AR: refused for a reason unrelated to
    the content; ERR-3 207 "Application internal error", table 0357 having no size
    code; the reason in ERR-8, and in MSA-3). The ACK echoes the sender, receiver,
    version and MSH-10 when the MSH segment is whole within ``prefix``; otherwise it
    is a bare AR without MSA-2.
    """
    error = HL7Error(
        "AR",
        f"message of {size} bytes exceeds the receiver's limit of {limit} bytes",
        hl7_code=APPLICATION_INTERNAL_ERROR,
    )
    return Inbound(prefix, complete_header(prefix), None, error, size)
