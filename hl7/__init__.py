"""HL7 v2 wire format: MLLP framing, parsing, message building. No database access.

Typical inbound use: ``inbound = receive(raw)``; store ``inbound.result`` when
``inbound.accepted``; answer ``inbound.ack()`` (or ``inbound.ack("AE", text=...)``
when storing failed); ``receive_oversize`` for a message over the size limit. The
MLLP server lives in :mod:`hl7.mllp_server`, the client in :mod:`hl7.mllp_client`,
outbound builders in :mod:`hl7.build`.
"""

from hl7.ack import build_ack
from hl7.errors import HL7Error
from hl7.inbound import Inbound, receive, receive_oversize
from hl7.interpret import interpret
from hl7.message import Message, Segment
from hl7.model import (
    IdentifierChange,
    Interpreted,
    MessageHeader,
    OrderData,
    OrderMessage,
    PatientData,
    PatientIdentifier,
    PatientMerge,
    PatientUpdate,
    PersonName,
    VisitData,
)
from hl7.parse import parse

__all__ = [
    "HL7Error",
    "IdentifierChange",
    "Inbound",
    "Interpreted",
    "Message",
    "MessageHeader",
    "OrderData",
    "OrderMessage",
    "PatientData",
    "PatientIdentifier",
    "PatientMerge",
    "PatientUpdate",
    "PersonName",
    "Segment",
    "VisitData",
    "build_ack",
    "interpret",
    "parse",
    "receive",
    "receive_oversize",
]
