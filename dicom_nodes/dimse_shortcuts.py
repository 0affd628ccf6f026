"""Measured shortcuts inside pydicom and pynetdicom on the C-STORE path, receiving and
forwarding.

Profiled with py-spy on the gateway's processes (0.5 MB CT instances, one association):

* the File Meta Information pynetdicom writes at the head of every streamed temp file
  is built as a pydicom dataset and written with validation: ~220 us per instance.
  :func:`file_meta_bytes` encodes the same seven elements directly (~5 us); a test
  checks the bytes are identical to pydicom's;
* every UID pydicom creates is checked against a regular expression only to warn
  (``reading_validation_mode`` WARN): ~2 us each, dozens per instance; and every UID set
  on a DIMSE primitive is checked again by pynetdicom, also only to log a warning (the
  check that could refuse it is already replaced: the DICOM node accepts any UID in a
  command and answers a failure status itself). The gateway validates the UIDs it uses
  (``dicom_nodes.identifiers``), so pynetdicom's check is off, and pydicom's while the
  receive path reads a header (:func:`dicom_nodes.fast_path.relaxed_reading`);
* for each C-STORE response (receiving) and request (forwarding), pynetdicom builds the
  command set as a pydicom dataset and encodes it: ~290 us per instance.
  :func:`store_response_command` and :func:`store_request_command` encode the same
  elements directly (~10 us; tested byte-identical, with the request's file fragments),
  used by :class:`dicom_nodes.event_driven.WaitingDIMSE` when nothing listens to the
  DIMSE "sent" event and the message has nothing unusual (a move originator, an
  offending element, a non-ASCII comment, a dataset not streamed from a file); the
  C-STORE responses the forward sender receives are decoded directly the same way
  (:func:`decode_store_response`, tested equal to pynetdicom's primitive);
* pynetdicom binds four logging handlers to every association (``LOG_HANDLER_LEVEL``
  "standard") that describe each PDU and DIMSE message; the gateway keeps pynetdicom's
  logger at WARNING (those summaries carry patient data), so they only cost CPU:
  ``LOG_HANDLER_LEVEL`` is "none", pynetdicom's documented switch for that.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from pynetdicom import (
    PYNETDICOM_IMPLEMENTATION_UID,
    PYNETDICOM_IMPLEMENTATION_VERSION,
    _config,
    dimse_messages,
    dimse_primitives,
    utils,
)
from pynetdicom.dimse_primitives import C_STORE


class FileMeta(NamedTuple):
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax: str
    implementation_uid: str = PYNETDICOM_IMPLEMENTATION_UID
    implementation_version: str = PYNETDICOM_IMPLEMENTATION_VERSION


def _element(element: int, vr: bytes, value: bytes, pad: bytes) -> bytes:
    if len(value) % 2:
        value += pad
    if vr == b"OB":  # explicit VR with a 4-byte length
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def file_meta_bytes(meta: FileMeta) -> bytes:
    """Group 0002, explicit VR little endian, as pydicom's ``write_file_meta_info``."""
    body = b"".join(
        (
            _element(0x0001, b"OB", b"\x00\x01", b"\x00"),
            _element(0x0002, b"UI", meta.sop_class_uid.encode("ascii"), b"\x00"),
            _element(0x0003, b"UI", meta.sop_instance_uid.encode("ascii"), b"\x00"),
            _element(0x0010, b"UI", meta.transfer_syntax.encode("ascii"), b"\x00"),
            _element(0x0012, b"UI", meta.implementation_uid.encode("ascii"), b"\x00"),
            _element(0x0013, b"SH", meta.implementation_version.encode("ascii"), b" "),
        )
    )
    return _element(0x0000, b"UL", struct.pack("<I", len(body)), b"\x00") + body


def _command_element(element: int, value: bytes, pad: bytes = b"\x00") -> bytes:
    """One command-set element: implicit VR little endian, group 0000."""
    if len(value) % 2:
        value += pad
    return struct.pack("<HHI", 0x0000, element, len(value)) + value


C_STORE_RSP = 0x8001
NO_DATASET = 0x0101


def store_response_command(primitive: C_STORE) -> bytes | None:
    """The encoded command set of a C-STORE response, or None to let pynetdicom do it."""
    if primitive.OffendingElement is not None or primitive.Status is None:
        return None
    comment = primitive.ErrorComment
    if comment is not None and not str(comment).isascii():
        return None
    parts = []
    if primitive.AffectedSOPClassUID:
        parts.append(_command_element(0x0002, str(primitive.AffectedSOPClassUID).encode()))
    parts.append(_command_element(0x0100, struct.pack("<H", C_STORE_RSP)))
    message_id = primitive.MessageIDBeingRespondedTo
    parts.append(_command_element(0x0120, struct.pack("<H", message_id)))
    parts.append(_command_element(0x0800, struct.pack("<H", NO_DATASET)))
    parts.append(_command_element(0x0900, struct.pack("<H", primitive.Status)))
    if comment is not None:
        parts.append(_command_element(0x0902, str(comment).encode("ascii"), b" "))
    if primitive.AffectedSOPInstanceUID:
        parts.append(_command_element(0x1000, str(primitive.AffectedSOPInstanceUID).encode()))
    body = b"".join(parts)
    return _command_element(0x0000, struct.pack("<I", len(body))) + body


_RESPONSE_ELEMENTS = {0x0000, 0x0002, 0x0100, 0x0120, 0x0800, 0x0900, 0x0902, 0x1000}


def decode_store_response(command: bytes, context_id: int) -> C_STORE | None:
    """The C-STORE response primitive of a whole encoded command set, or None if it is
    anything else (or has anything unusual): then pynetdicom decodes it."""
    values: dict[int, bytes] = {}
    offset = 0
    while offset + 8 <= len(command):
        group, element, length = struct.unpack_from("<HHI", command, offset)
        value = command[offset + 8 : offset + 8 + length]
        if group != 0 or element not in _RESPONSE_ELEMENTS or len(value) != length:
            return None
        if b"\\" in value and element in (0x0002, 0x0902, 0x1000):
            return None  # a multi-valued text: pynetdicom keeps the first value, with a warning
        values[element] = value
        offset += 8 + length
    if offset != len(command):
        return None
    try:
        (field,) = struct.unpack("<H", values[0x0100])
        (dataset_type,) = struct.unpack("<H", values[0x0800])
        (message_id,) = struct.unpack("<H", values[0x0120])
        (status,) = struct.unpack("<H", values[0x0900])
    except (KeyError, struct.error):
        return None
    if field != C_STORE_RSP or dataset_type != NO_DATASET:
        return None
    primitive = C_STORE()
    try:
        if 0x0002 in values:
            primitive.AffectedSOPClassUID = values[0x0002].rstrip(b"\0 ").decode("ascii")
        primitive.MessageIDBeingRespondedTo = message_id
        primitive.Status = status
        if 0x0902 in values:
            primitive.ErrorComment = values[0x0902].decode("ascii").rstrip(" ")  # type: ignore[assignment]
        if 0x1000 in values:
            primitive.AffectedSOPInstanceUID = values[0x1000].rstrip(b"\0 ").decode("ascii")
    except ValueError:  # non-ASCII text, a value out of range
        return None
    primitive._context_id = context_id
    primitive._dataset_path = None
    primitive._dataset_file = None
    return primitive


C_STORE_RQ = 0x0001
WITH_DATASET = 0x0001


def store_request_command(primitive: C_STORE) -> bytes | None:
    """The encoded command set of a C-STORE request whose dataset is streamed from a
    file, or None to let pynetdicom do it."""
    if (
        not isinstance(primitive._dataset_path, tuple)  # (file, offset of the dataset)
        or primitive.MoveOriginatorApplicationEntityTitle is not None
        or primitive.MoveOriginatorMessageID is not None
        or primitive.MessageID is None
        or not primitive.AffectedSOPClassUID
        or not primitive.AffectedSOPInstanceUID
    ):
        return None
    body = b"".join(
        (
            _command_element(0x0002, str(primitive.AffectedSOPClassUID).encode()),
            _command_element(0x0100, struct.pack("<H", C_STORE_RQ)),
            _command_element(0x0110, struct.pack("<H", primitive.MessageID)),
            _command_element(0x0700, struct.pack("<H", primitive.Priority)),
            _command_element(0x0800, struct.pack("<H", WITH_DATASET)),
            _command_element(0x1000, str(primitive.AffectedSOPInstanceUID).encode()),
        )
    )
    return _command_element(0x0000, struct.pack("<I", len(body))) + body


class FileSlice(NamedTuple):
    """A dataset PDV sent straight from the file: the control header byte, then
    ``length`` bytes at ``offset`` of ``file``. The DUL hands the bytes to the kernel
    (``sendfile``) when the PDU goes out; the file is closed after the ``last`` slice."""

    control: int
    file: BinaryIO
    offset: int
    length: int
    last: bool


class HeadedFile(NamedTuple):
    """A stored instance sent with another head: ``head`` (an encoded data set prefix, a
    corrected header) then the file's bytes from ``tail_offset`` to its end, untouched.
    ``dataset_offset``: where the data set starts in the file (after the File Meta)."""

    path: Path
    head: bytes
    tail_offset: int
    dataset_offset: int


_heads = threading.local()


@contextlib.contextmanager
def sending_head(item: HeadedFile) -> Iterator[None]:
    """While a C-STORE of ``item.path`` is sent from this thread, its dataset PDVs are
    ``item.head`` then the file from ``item.tail_offset`` (see :func:`file_slices`)."""
    _heads.item = item
    try:
        yield
    finally:
        _heads.item = None


def file_slices(path: Path, offset: int, max_pdu: int) -> list[FileSlice]:
    """The dataset PDVs of a file from ``offset``, cut as pynetdicom's ``encode_msg``
    cuts them (one per P-DATA, ``max_pdu - 6`` bytes of data each). Within
    :func:`sending_head` for this file: the head's bytes first, then the file's from the
    head's ``tail_offset``."""
    headed: HeadedFile | None = getattr(_heads, "item", None)
    file = open(path, "rb")  # noqa: SIM115 - closed by the DUL after the last slice
    try:
        size = os.fstat(file.fileno()).st_size
        parts: list[tuple[BinaryIO, int, int]] = []
        if headed is not None and Path(headed.path) == Path(path):
            parts.append((io.BytesIO(headed.head), 0, len(headed.head)))
            offset = headed.tail_offset
        if size > offset or not parts:
            parts.append((file, offset, size - offset))
        else:
            file.close()  # nothing of the file is sent: the head is the whole dataset
        total = sum(length for _, _, length in parts)
        piece = max_pdu - 6 if max_pdu else max(total, 1)
        slices = []
        for source, start, length in parts:
            while length > 0:
                n = min(piece, length)
                slices.append(FileSlice(0x00, source, start, n, False))
                start += n
                length -= n
        if not slices:
            slices.append(FileSlice(0x02, file, offset, 0, True))
        else:
            last = slices[-1]
            slices[-1] = last._replace(control=0x02, last=True)
    except BaseException:
        file.close()
        raise
    return slices


def _create_file_meta(**values: Any) -> FileMeta:
    return FileMeta(**{k: str(v) for k, v in values.items()})


def _write_file_meta_info(fp: BinaryIO, meta: FileMeta, *args: Any, **kwargs: Any) -> None:
    fp.write(file_meta_bytes(meta))


def _set_uid_unchecked(
    value: Any, name: str, allow_empty: bool = True, allow_none: bool = True, validate: bool = True
) -> Any:
    return _SET_UID(value, name, allow_empty, allow_none, False)


_SET_UID = utils.set_uid


def apply() -> None:
    """Install the shortcuts (idempotent); only :func:`dicom_nodes.fast_path.configure`
    calls this, with the versions they were verified with."""
    _config.LOG_HANDLER_LEVEL = "none"
    # Only decode_msg's streamed-dataset branch uses these two names in that module.
    dimse_messages.create_file_meta = _create_file_meta  # type: ignore[assignment]
    dimse_messages.write_file_meta_info = _write_file_meta_info  # type: ignore[assignment]
    dimse_primitives.set_uid = _set_uid_unchecked
