"""One call for an inbound message: parse, interpret, and the ACK to send; never raises."""

from __future__ import annotations

from dataclasses import dataclass

from hl7.ack import build_ack
from hl7.errors import AckCode, HL7Error
from hl7.interpret import interpret
from hl7.message import Message
from hl7.model import Interpreted
from hl7.parse import parse


@dataclass(frozen=True, slots=True)
class Inbound:
    """Outcome of :func:`receive`: ``result`` when accepted, else ``error``."""

    raw: bytes
    message: Message | None
    result: Interpreted | None
    error: HL7Error | None

    @property
    def accepted(self) -> bool:
        """True when the message parsed and mapped without error."""
        return self.error is None and self.result is not None

    def ack(
        self, code: AckCode | None = None, error: HL7Error | None = None, text: str | None = None
    ) -> bytes:
        """ACK bytes: AA when accepted, else AE/AR with ERR (``error`` overrides)."""
        source: Message | bytes = self.message if self.message is not None else self.raw
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
