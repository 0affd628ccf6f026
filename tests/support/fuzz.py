"""A seeded HL7 v2 mutation generator for the fuzz proof test.

Each message starts from a valid order or ADT message with its own control ID, placer
number and accession (so that unmutated ones create new rows), then gets one or more
mutations: field deletions, separator swaps, truncation, random bytes, oversized fields,
invalid dates, wrong character sets, dropped or duplicated segments. The MLLP block
characters (0x0B, 0x1C) are never produced: framing is the transport's business, and
every generated payload must travel as exactly one frame.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date
from pathlib import Path

from tests.fixtures.orders.helpers import adt, omi, orm

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "hl7"
BAD_DATES = [
    "20261345", "2026-13-45", "99999999999999", "0", "2026022", "20260230",
    "19000229", "2026112525", "ABCDEFGH", "20261125246100", "-20261125", "2026\\T\\1125",
]  # fmt: skip
CHARSETS = ["8859/1", "UNICODE UTF-8", "KOI8-R", "GB 18030", "ISO IR192", "\\X\\", "UTF-16"]
NAMES = ["NGUYỄN^VĂN AN", "TRẦN^THỊ BÍCH", "LÊ^HOÀNG", "O'BRIEN^Ñ", "Ω^ß"]


class HL7Mutator:
    """``next()`` returns (mutation names, payload); the same seed gives the same stream."""

    def __init__(self, seed: int, oversized_bytes: int = 300_000) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.count = 0
        self.oversized_bytes = oversized_bytes
        self.fixtures = [p.read_bytes() for p in sorted(FIXTURES.glob("*.hl7"))]
        self.mutations: dict[str, Callable[[bytes], bytes]] = {
            "delete_field": self._delete_field,
            "swap_separators": self._swap_separators,
            "truncate": self._truncate,
            "random_bytes": self._random_bytes,
            "oversized_field": self._oversized_field,
            "invalid_date": self._invalid_date,
            "wrong_charset": self._wrong_charset,
            "drop_segment": self._drop_segment,
            "duplicate_segment": self._duplicate_segment,
            "empty_fields": self._empty_fields,
        }

    # -- bases -----------------------------------------------------------------------------
    def base(self) -> bytes:
        """A valid message with fresh identifiers."""
        n = self.count
        cid, today = f"F{self.seed % 10000}-{n}", date.today().strftime("%Y%m%d")
        name = self.rng.choice(NAMES)
        pid = f"FZ{self.rng.randrange(300)}"
        kind = self.rng.randrange(10)
        if kind < 5:
            return orm(cid, patient_id=pid, name=name, placer=f"FP{n}", accession=f"FA{n}",
                       start=f"{today}{8 + n % 10:02d}0000")  # fmt: skip
        if kind < 7:
            return omi(cid, patient_id=pid, name=name, placer=f"FO{n}", accession=f"FB{n}",
                       start=f"{today}090000", station="CT01")  # fmt: skip
        if kind < 8:
            event = self.rng.choice(["A01", "A04", "A08", "A31"])
            return adt(cid, event, patient_id=pid, name=name)
        if kind < 9:
            return adt(cid, "A40", patient_id=pid, name=name, prior=f"FZ{self.rng.randrange(300)}")
        raw = self.rng.choice(self.fixtures)
        lines = raw.split(b"\r")
        fields = lines[0].split(lines[0][3:4]) if len(lines[0]) > 3 else []
        if len(fields) > 9:
            fields[9] = cid.encode()
            lines[0] = lines[0][3:4].join(fields)
        return b"\r".join(lines)

    def next(self) -> tuple[list[str], bytes]:
        self.count += 1
        data = self.base()
        if self.rng.random() < 0.15:
            return ["none"], data
        names = self.rng.sample(sorted(self.mutations), self.rng.choice([1, 1, 1, 2, 3]))
        for name in names:
            data = self.mutations[name](data)
        return names, data.replace(b"\x0b", b"?").replace(b"\x1c", b"?")

    def oversized_frame(self, limit: int) -> bytes:
        """A valid-looking order over ``limit`` bytes (the listener answers AR)."""
        self.count += 1
        data = self.base()
        return data + b"NTE|1||" + b"X" * (limit + 1024) + b"\r"

    # -- mutations -------------------------------------------------------------------------
    def _segments(self, data: bytes) -> list[bytes]:
        return data.split(b"\r")

    def _pick(self, segments: list[bytes], allow_msh: bool = True) -> int:
        first = 0 if allow_msh else 1
        candidates = [i for i in range(first, len(segments)) if segments[i]]
        return self.rng.choice(candidates) if candidates else 0

    def _delete_field(self, data: bytes) -> bytes:
        segs = self._segments(data)
        i = self._pick(segs)
        fields = segs[i].split(b"|")
        if len(fields) > 1:
            del fields[self.rng.randrange(1, len(fields))]
        segs[i] = b"|".join(fields)
        return b"\r".join(segs)

    def _swap_separators(self, data: bytes) -> bytes:
        seps = b"|^~\\&\r"
        a, b = self.rng.sample(range(len(seps)), 2)
        if self.rng.random() < 0.5:  # everywhere
            table = bytes.maketrans(
                seps[a : a + 1] + seps[b : b + 1], seps[b : b + 1] + seps[a : a + 1]
            )
            return data.translate(table)
        positions = [i for i, c in enumerate(data) if c in seps]
        if not positions:
            return data
        pos = self.rng.choice(positions)
        return data[:pos] + bytes([self.rng.choice(seps)]) + data[pos + 1 :]

    def _truncate(self, data: bytes) -> bytes:
        return data[: self.rng.randrange(0, max(len(data), 1))]

    def _random_bytes(self, data: bytes) -> bytes:
        buf = bytearray(data)
        for _ in range(self.rng.randint(1, 12)):
            pos = self.rng.randrange(0, len(buf) + 1)
            op = self.rng.randrange(3)
            byte = self.rng.randrange(256)
            if op == 0 and pos < len(buf):
                buf[pos] = byte
            elif op == 1:
                buf[pos:pos] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 8)))
            elif pos < len(buf):
                del buf[pos : pos + self.rng.randint(1, 16)]
        return bytes(buf)

    def _oversized_field(self, data: bytes) -> bytes:
        segs = self._segments(data)
        i = self._pick(segs, allow_msh=False)
        size = self.rng.choice([20_000, 60_000, self.oversized_bytes])
        filler = self.rng.choice([b"A", "Ễ".encode(), b"^", b"~", b"\\X41\\"])
        segs[i] += b"|" + (filler * (size // len(filler)))
        return b"\r".join(segs)

    def _invalid_date(self, data: bytes) -> bytes:
        bad = self.rng.choice(BAD_DATES).encode()
        segs = self._segments(data)
        targets = [
            (i, f)
            for i, seg in enumerate(segs)
            for f in {b"MSH": [6], b"PID": [7], b"TQ1": [7], b"EVN": [2], b"OBR": [6, 7]}.get(
                seg[:3], []
            )
        ]
        if not targets:
            return data
        i, f = self.rng.choice(targets)
        fields = segs[i].split(b"|")
        while len(fields) <= f:
            fields.append(b"")
        fields[f] = bad
        segs[i] = b"|".join(fields)
        return b"\r".join(segs)

    def _wrong_charset(self, data: bytes) -> bytes:
        text = data.decode("utf-8", errors="replace")
        op = self.rng.randrange(4)
        if op == 0:  # declared UTF-8, sent in a legacy code page
            return text.encode(self.rng.choice(["latin-1", "cp1258"]), errors="replace")
        if op == 1:  # sent as UTF-16: NUL bytes everywhere
            return text.encode(self.rng.choice(["utf-16-le", "utf-16"]))
        segs = self._segments(data)
        fields = segs[0].split(b"|")
        while len(fields) <= 17:
            fields.append(b"")
        fields[17] = self.rng.choice(CHARSETS).encode()
        segs[0] = b"|".join(fields)
        out = b"\r".join(segs)
        if op == 3:  # a declared single-byte set with invalid UTF-8 sequences inside
            out += b"NTE|1||\xc3\x28\xe2\x82\xff\xfe\r"
        return out

    def _drop_segment(self, data: bytes) -> bytes:
        segs = self._segments(data)
        if len(segs) > 1:
            del segs[self._pick(segs)]
        return b"\r".join(segs)

    def _duplicate_segment(self, data: bytes) -> bytes:
        segs = self._segments(data)
        i = self._pick(segs)
        segs.insert(self.rng.randrange(len(segs) + 1), segs[i])
        return b"\r".join(segs)

    def _empty_fields(self, data: bytes) -> bytes:
        segs = self._segments(data)
        i = self._pick(segs)
        fields = segs[i].split(b"|")
        for f in self.rng.sample(range(1, max(len(fields), 2)), min(3, max(len(fields) - 1, 1))):
            if f < len(fields):
                fields[f] = self.rng.choice([b"", b'""', b"^^^", b"~~"])
        segs[i] = b"|".join(fields)
        return b"\r".join(segs)
