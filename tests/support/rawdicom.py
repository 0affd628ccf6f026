"""Raw DICOM upper-layer PDUs over plain sockets, for hostile peers in the proof tests.

Builds A-ASSOCIATE-RQ, P-DATA-TF (C-STORE/C-ECHO/C-FIND commands in implicit VR little
endian) and A-RELEASE-RQ by hand (PS3.8 section 9.3), so that a test can send what no
well-behaved toolkit would: truncated PDUs, lying lengths, connections that go away
mid-dataset. The acceptor's side (A-ASSOCIATE-AC, A-RELEASE-RP, a C-STORE response) is
here too, for fake peers of the gateway's own SCU.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass

APP_CONTEXT = "1.2.840.10008.3.1.1.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
WORKLIST_FIND = "1.2.840.10008.5.1.4.31"


def _uid(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b"\0" if len(raw) % 2 else raw


def _item(kind: int, body: bytes) -> bytes:
    return struct.pack(">BBH", kind, 0, len(body)) + body


def _ae(title: str) -> bytes:
    return title.encode("ascii")[:16].ljust(16, b" ")


def associate_rq(
    calling: str,
    called: str = "RISGATE",
    contexts: list[tuple[int, str, list[str]]] | None = None,
    max_pdu: int = 16384,
) -> bytes:
    """An A-ASSOCIATE-RQ PDU; ``contexts`` are (id, abstract syntax, transfer syntaxes)."""
    contexts = contexts or [(1, VERIFICATION, [IMPLICIT_LE])]
    items = _item(0x10, APP_CONTEXT.encode())
    for ctx_id, abstract, transfers in contexts:
        sub = _item(0x30, _uid(abstract)) + b"".join(_item(0x40, _uid(t)) for t in transfers)
        items += _item(0x20, struct.pack(">BBBB", ctx_id, 0, 0, 0) + sub)
    user = _item(0x51, struct.pack(">I", max_pdu)) + _item(0x52, _uid("1.2.826.0.1.3680043.9.1"))
    items += _item(0x50, user)
    body = struct.pack(">HH", 1, 0) + _ae(called) + _ae(calling) + b"\0" * 32 + items
    return struct.pack(">BBI", 0x01, 0, len(body)) + body


def _element(group: int, elem: int, value: bytes) -> bytes:
    if len(value) % 2:
        value += b"\0"
    return struct.pack("<HHI", group, elem, len(value)) + value


def command(field: int, sop_class: str, sop_instance: str | None, msg_id: int = 1) -> bytes:
    """A DIMSE request command set (implicit VR LE), with its group length."""
    body = _element(0x0000, 0x0002, _uid(sop_class))
    body += _element(0x0000, 0x0100, struct.pack("<H", field))
    body += _element(0x0000, 0x0110, struct.pack("<H", msg_id))
    if field in (0x0001, 0x0020):  # C-STORE-RQ, C-FIND-RQ
        body += _element(0x0000, 0x0700, struct.pack("<H", 0))
        body += _element(0x0000, 0x0800, struct.pack("<H", 0x0000))  # a dataset follows
        if field == 0x0001:
            body += _element(0x0000, 0x1000, _uid(sop_instance or ""))
    else:
        body += _element(0x0000, 0x0800, struct.pack("<H", 0x0101))  # no dataset
    return _element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


def elements(data: bytes) -> dict[tuple[int, int], bytes]:
    """The elements of a command set (implicit VR little endian): tag -> value bytes."""
    out: dict[tuple[int, int], bytes] = {}
    pos = 0
    while pos + 8 <= len(data):
        group, elem, length = struct.unpack("<HHI", data[pos : pos + 8])
        out[(group, elem)] = data[pos + 8 : pos + 8 + length]
        pos += 8 + length
    return out


def p_data(ctx_id: int, data: bytes, *, is_command: bool, last: bool = True) -> bytes:
    """One P-DATA-TF PDU with one PDV."""
    return p_data_pdvs([(ctx_id, data, is_command, last)])


def p_data_pdvs(pdvs: list[tuple[int, bytes, bool, bool]]) -> bytes:
    """One P-DATA-TF PDU with a PDV for each (context ID, data, is_command, last)."""
    items = b""
    for ctx_id, data, is_command, last in pdvs:
        header = (0x01 if is_command else 0x00) | (0x02 if last else 0x00)
        items += struct.pack(">IBB", len(data) + 2, ctx_id, header) + data
    return struct.pack(">BBI", 0x04, 0, len(items)) + items


def response(
    field: int, sop_class: str, sop_instance: str, msg_id: int, status: int = 0x0000
) -> bytes:
    """A DIMSE response command set without a dataset (a C-STORE-RSP is 0x8001)."""
    body = _element(0x0000, 0x0002, _uid(sop_class))
    body += _element(0x0000, 0x0100, struct.pack("<H", field))
    body += _element(0x0000, 0x0120, struct.pack("<H", msg_id))
    body += _element(0x0000, 0x0800, struct.pack("<H", 0x0101))
    body += _element(0x0000, 0x0900, struct.pack("<H", status))
    body += _element(0x0000, 0x1000, _uid(sop_instance))
    return _element(0x0000, 0x0000, struct.pack("<I", len(body))) + body


RELEASE_RQ = struct.pack(">BBI", 0x05, 0, 4) + b"\0" * 4
RELEASE_RP = struct.pack(">BBI", 0x06, 0, 4) + b"\0" * 4


@dataclass
class Pdu:
    kind: int
    body: bytes

    @property
    def reject_reason(self) -> tuple[int, int, int]:
        """(result, source, reason) of an A-ASSOCIATE-RJ."""
        return self.body[1], self.body[2], self.body[3]

    def accepted_contexts(self) -> dict[int, str]:
        """Context id -> transfer syntax of the contexts accepted in an A-ASSOCIATE-AC."""
        out: dict[int, str] = {}
        pos = 68
        while pos + 4 <= len(self.body):
            kind, _, length = struct.unpack(">BBH", self.body[pos : pos + 4])
            item = self.body[pos + 4 : pos + 4 + length]
            if kind == 0x21 and item[2] == 0:  # result 0: acceptance
                ts_len = struct.unpack(">H", item[6:8])[0]
                out[item[0]] = item[8 : 8 + ts_len].rstrip(b"\0").decode()
            pos += 4 + length
        return out

    def proposed_contexts(self) -> list[tuple[int, str, list[str]]]:
        """(id, abstract syntax, transfer syntaxes) of each context of an A-ASSOCIATE-RQ."""
        out: list[tuple[int, str, list[str]]] = []
        for kind, item in _items(self.body, 68):
            if kind == 0x20:
                abstract, transfers = "", []
                for sub_kind, sub in _items(item, 4):
                    text = sub.rstrip(b"\0").decode()
                    if sub_kind == 0x30:
                        abstract = text
                    elif sub_kind == 0x40:
                        transfers.append(text)
                out.append((item[0], abstract, transfers))
        return out

    def pdvs(self) -> list[tuple[int, int, bytes]]:
        """(context id, control header, fragment) of each PDV of a P-DATA-TF."""
        out: list[tuple[int, int, bytes]] = []
        pos = 0
        while pos + 6 <= len(self.body):
            length, ctx_id, control = struct.unpack(">IBB", self.body[pos : pos + 6])
            out.append((ctx_id, control, self.body[pos + 6 : pos + 4 + length]))
            pos += 4 + length
        return out

    def status(self) -> int | None:
        """The Status (0000,0900) of a DIMSE response in a P-DATA-TF, if present."""
        data = self.body[6:]
        pos = 0
        while pos + 8 <= len(data):
            group, elem, length = struct.unpack("<HHI", data[pos : pos + 8])
            if (group, elem) == (0x0000, 0x0900):
                return int(struct.unpack("<H", data[pos + 8 : pos + 10])[0])
            pos += 8 + length
        return None


def _items(data: bytes, pos: int) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    while pos + 4 <= len(data):
        kind, _, length = struct.unpack(">BBH", data[pos : pos + 4])
        out.append((kind, data[pos + 4 : pos + 4 + length]))
        pos += 4 + length
    return out


def associate_ac(rq: Pdu, max_pdu: int = 16384) -> bytes:
    """The A-ASSOCIATE-AC accepting every context of ``rq`` with its first transfer syntax."""
    items = _item(0x10, APP_CONTEXT.encode())
    for ctx_id, _abstract, transfers in rq.proposed_contexts():
        sub = _item(0x40, _uid(transfers[0]))
        items += _item(0x21, struct.pack(">BBBB", ctx_id, 0, 0, 0) + sub)
    items += _item(0x50, _item(0x51, struct.pack(">I", max_pdu)))
    body = rq.body[:68] + items  # version, AE titles and reserved bytes as requested
    return struct.pack(">BBI", 0x02, 0, len(body)) + body


class RawAssociation:
    """A socket speaking raw PDUs; nothing is checked on the way out.

    ``narrow``: a small receive buffer and TCP segment size, set before connecting. The
    other side's send buffer for this connection then stays small too (Linux sizes it
    from the segment size: loopback's 64 KB segments let it grow to 4 MB), so a peer
    that stops reading blocks the other side's sends after about 100 KB."""

    def __init__(self, port: int, timeout: float = 10.0, *, narrow: bool = False) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if narrow:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        self.sock = sock

    @classmethod
    def accepted(cls, sock: socket.socket, timeout: float = 10.0) -> RawAssociation:
        """The acceptor's side of a connection a test's listening socket accepted."""
        peer = cls.__new__(cls)
        sock.settimeout(timeout)
        peer.sock = sock
        return peer

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("peer closed")
            buf += chunk
        return buf

    def receive(self) -> Pdu:
        kind, _, length = struct.unpack(">BBI", self._read(6))
        return Pdu(kind, self._read(length))

    def associate(self, calling: str, **kwargs: object) -> Pdu:
        """Send an A-ASSOCIATE-RQ and return the answer (0x02 AC, 0x03 RJ, 0x07 abort)."""
        self.send(associate_rq(calling, **kwargs))  # type: ignore[arg-type]
        return self.receive()

    def store(
        self, ctx_id: int, sop_class: str, sop_uid: str, dataset: bytes, msg_id: int = 1
    ) -> int | None:
        """A C-STORE of ``dataset`` (sent as it is, in 16 KB PDVs); the response Status."""
        self.send(p_data(ctx_id, command(0x0001, sop_class, sop_uid, msg_id), is_command=True))
        step = 16000
        for pos in range(0, max(len(dataset), 1), step):
            last = pos + step >= len(dataset)
            self.send(p_data(ctx_id, dataset[pos : pos + step], is_command=False, last=last))
        pdu = self.receive()
        return pdu.status() if pdu.kind == 0x04 else None

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True once the peer closes (reading and discarding what it still sends)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
        except TimeoutError:
            return False
        except OSError:  # reset by the peer
            return True
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
