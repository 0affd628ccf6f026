"""Proof: an HL7 fuzz run over real MLLP against a running gateway (issue 8, item 3).

Seeded mutated messages (``tests/support/fuzz.py``; the seed is printed, set
``RISGATE_PROOF_SEED`` to replay one) are sent one after another on one connection.
Every one must be answered AA, AE or AR; an AE/AR must leave the order tables exactly as
they were (counted before and after each message); at the end the listener still accepts
a valid order, the process is alive and the stored orders are whole (each with its
patient, requested procedures and scheduled steps). Frames over ``hl7.max_message_bytes``
are answered AR too, stored as one REJECTED row, on the same connection.
Bounded form 1,500 messages; ``RISGATE_PROOF=full``: 10,000.
"""

from __future__ import annotations

import os
import random
import socket
import sqlite3
import time
from collections import Counter
from datetime import date
from typing import Any

import pytest

from hl7.mllp import FrameDecoder, encode_frame
from tests.fixtures.orders.helpers import ack_code, orm
from tests.support.fuzz import HL7Mutator
from tests.support.gateway_proc import GatewayProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.proof,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

FULL = os.environ.get("RISGATE_PROOF") == "full"
MESSAGES = 10_000 if FULL else 1_500
MAX_BYTES = 262_144
TABLES = ("order_patients", "orders", "requested_procedures", "scheduled_steps")


class MllpClient:
    """One MLLP connection; ``send`` returns the ACK, or None if the peer closed."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.decoder = FrameDecoder(MAX_BYTES * 4)

    def send(self, payload: bytes) -> bytes | None:
        try:
            self.sock.sendall(encode_frame(payload))
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return None
                frames = list(self.decoder.feed(data))
                if frames:
                    assert len(frames) == 1, "more than one answer to one message"
                    return bytes(frames[0])
        except (ConnectionResetError, BrokenPipeError):
            return None

    def close(self) -> None:
        self.sock.close()


def _stored(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT count(*) FROM hl7_messages").fetchone()[0])


def _counts(db: sqlite3.Connection) -> tuple[int, ...]:
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES)


def test_hl7_fuzz_every_message_answered_nothing_partial(gateway_factory: Any) -> None:
    seed = int(os.environ.get("RISGATE_PROOF_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"HL7 fuzz seed {seed} (RISGATE_PROOF_SEED={seed} replays it), {MESSAGES} messages")
    gw: GatewayProcess = gateway_factory.make(
        {"hl7": {"max_message_bytes": MAX_BYTES}, "log": {"level": "WARNING"}}
    )
    gw.start()
    db = sqlite3.connect(gw.config["database"]["url"].removeprefix("sqlite:///"))
    mutator = HL7Mutator(seed, oversized_bytes=MAX_BYTES // 3)  # UTF-16 doubles it
    codes: Counter[str] = Counter()
    by_mutation: dict[str, Counter[str]] = {}
    client = MllpClient(gw.hl7_port)
    started = time.monotonic()
    try:
        for i in range(MESSAGES):
            if i % 500 == 250:  # now and then a frame over the limit: AR, one row, no effect
                before = _counts(db)
                stored = _stored(db)
                ack = client.send(mutator.oversized_frame(MAX_BYTES))
                assert ack is not None and ack_code(ack) == "AR", f"oversize {i}: {ack!r}"
                assert _counts(db) == before and _stored(db) == stored + 1
                codes["AR (over max_message_bytes)"] += 1
                continue
            names, payload = mutator.next()
            before = _counts(db)
            ack = client.send(payload)
            assert ack is not None, f"message {i} ({names}, seed {seed}) got no answer"
            code = ack_code(ack)
            assert code in ("AA", "AE", "AR"), f"message {i} ({names}, seed {seed}): {ack!r}"
            codes[code] += 1
            for name in names:
                by_mutation.setdefault(name, Counter())[code] += 1
            if code != "AA":
                after = _counts(db)
                assert after == before, (
                    f"message {i} ({names}, seed {seed}) answered {code} "
                    f"but changed the order tables {before} -> {after}"
                )
        # Still alive: a valid order on the same connection.
        today = date.today().strftime("%Y%m%d")
        final = orm("FINAL", patient_id="FINAL1", name="NGUYỄN^VĂN AN", placer="FINALP",
                    accession="FINALA", start=f"{today}080000")  # fmt: skip
        ack = client.send(final)
        assert ack is not None and ack_code(ack) == "AA"
    finally:
        client.close()
    elapsed = time.monotonic() - started
    print(f"{MESSAGES} messages in {elapsed:.0f} s: {dict(codes)}")
    for name, counter in sorted(by_mutation.items()):
        print(f"  {name:18} {dict(counter)}")
    assert gw.process is not None and gw.process.poll() is None, "gateway died"
    # The fuzz reached every outcome.
    assert codes["AA"] > MESSAGES // 20 and codes["AE"] > 0 and codes["AR"] > 0, codes

    # No partial rows: every order whole, every stored message with its ACK.
    orphans = {
        "orders without patient": "SELECT count(*) FROM orders o LEFT JOIN order_patients p "
        "ON p.id = o.patient_pk WHERE p.id IS NULL",
        "orders without procedure": "SELECT count(*) FROM orders o WHERE NOT EXISTS "
        "(SELECT 1 FROM requested_procedures r WHERE r.order_pk = o.id)",
        "procedures without order": "SELECT count(*) FROM requested_procedures r LEFT JOIN "
        "orders o ON o.id = r.order_pk WHERE o.id IS NULL",
        "procedures without step": "SELECT count(*) FROM requested_procedures r WHERE NOT "
        "EXISTS (SELECT 1 FROM scheduled_steps s WHERE s.rp_pk = r.id)",
        "steps without procedure": "SELECT count(*) FROM scheduled_steps s LEFT JOIN "
        "requested_procedures r ON r.id = s.rp_pk WHERE r.id IS NULL",
        "messages without ACK": "SELECT count(*) FROM hl7_messages WHERE ack_code NOT IN "
        "('AA', 'AE', 'AR') OR ack IS NULL OR raw IS NULL",
    }
    found = {name: db.execute(sql).fetchone()[0] for name, sql in orphans.items()}
    assert found == dict.fromkeys(orphans, 0), found
    orders, stored = (db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                      for t in ("orders", "hl7_messages"))  # fmt: skip
    assert orders > 0 and stored >= codes["AA"] // 2
    db.close()
    log = gw.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "MLLP handler failed" not in log
