"""The one exception type of the HL7 layer, carrying what an ACK needs to report it."""

from __future__ import annotations

from typing import Literal

AckCode = Literal["AA", "AE", "AR"]

# HL7 table 0357 (message error condition codes) used by this package.
SEGMENT_SEQUENCE_ERROR = 100
REQUIRED_FIELD_MISSING = 101
DATA_TYPE_ERROR = 102
TABLE_VALUE_NOT_FOUND = 103
UNSUPPORTED_MESSAGE_TYPE = 200
UNSUPPORTED_EVENT_CODE = 201
UNSUPPORTED_PROCESSING_ID = 202
UNSUPPORTED_VERSION_ID = 203
DUPLICATE_KEY_IDENTIFIER = 205
APPLICATION_INTERNAL_ERROR = 207

ERROR_CODE_TEXT: dict[int, str] = {
    0: "Message accepted",
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_EVENT_CODE: "Unsupported event code",
    UNSUPPORTED_PROCESSING_ID: "Unsupported processing id",
    UNSUPPORTED_VERSION_ID: "Unsupported version id",
    DUPLICATE_KEY_IDENTIFIER: "Duplicate key identifier",
    APPLICATION_INTERNAL_ERROR: "Application internal error",
}


class HL7Error(Exception):
    """A message that cannot be accepted.

    ``code`` is the MSA-1 answer: ``AR`` (rejected: not understood or not supported)
    or ``AE`` (understood but its content is in error). ``segment`` and
    ``field_position`` (1-based, as in the standard) locate the problem;
    ``segment_seq`` says which occurrence of the segment (1-based) and ``component``
    narrows it to a component. ``hl7_code`` is the HL7 table 0357 condition code.
    Messages never contain field values, so they are safe to log.
    """

    def __init__(
        self,
        code: AckCode,
        message: str,
        segment: str | None = None,
        field_position: int | None = None,
        *,
        segment_seq: int = 1,
        component: int | None = None,
        hl7_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code: AckCode = code
        self.message = message
        self.segment = segment
        self.field_position = field_position
        self.segment_seq = segment_seq
        self.component = component
        if hl7_code is None:
            hl7_code = REQUIRED_FIELD_MISSING if code == "AE" else APPLICATION_INTERNAL_ERROR
        self.hl7_code = hl7_code

    @property
    def location(self) -> str:
        """Human readable location such as ``OBR-4`` or ``ORC-7.4`` ('' when unknown)."""
        if not self.segment:
            return ""
        if self.field_position is None:
            return self.segment
        text = f"{self.segment}-{self.field_position}"
        if self.component is not None:
            text += f".{self.component}"
        return text

    def __str__(self) -> str:
        where = self.location
        return f"{self.code} {where}: {self.message}" if where else f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return (
            f"HL7Error({self.code!r}, {self.message!r}, {self.segment!r}, "
            f"{self.field_position!r}, hl7_code={self.hl7_code!r})"
        )
