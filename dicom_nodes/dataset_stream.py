"""Where the dataset fragments of a P-DATA-TF PDU lie, so that the receive path can write
them to the dataset's file straight from the bytes read off the socket.

pynetdicom turns each P-DATA-TF PDU into objects and copies (the PDU's bytes, each PDV's
value, each fragment without its header byte), queues an event for its state machine and
a PDU for the DIMSE provider, and only then writes the fragment to the file. A 0.5 MB
instance crosses that path four times at a 128 KB maximum PDU. For the PDUs in the middle
of a C-STORE dataset, :class:`dicom_nodes.event_driven.WakeableDUL` asks
:func:`middle_fragments` and writes the fragments itself; every other PDU (commands, the
last fragment, other contexts, anything odd) goes pynetdicom's way.
"""

from __future__ import annotations

import struct

_ITEM = struct.Struct(">IBB")  # PDV item length, presentation context ID, control header


def middle_fragments(body: memoryview | bytes, context_id: int) -> list[tuple[int, int]] | None:
    """The (start, end) offsets, within ``body`` (a P-DATA-TF PDU without its 6-byte
    header), of each fragment's data when every PDV of the PDU is a data set fragment
    that is not the last one (control header bits ``xxxxxx00``) on ``context_id``, and
    the PDV items fill ``body`` exactly; None otherwise (the PDU is then pynetdicom's)."""
    fragments: list[tuple[int, int]] = []
    offset = 0
    size = len(body)
    while offset < size:
        if size - offset < _ITEM.size:
            return None
        length, context, control = _ITEM.unpack_from(body, offset)
        end = offset + 4 + length
        if length < 2 or end > size or context != context_id or control & 0x03:
            return None
        fragments.append((offset + _ITEM.size, end))
        offset = end
    return fragments or None
