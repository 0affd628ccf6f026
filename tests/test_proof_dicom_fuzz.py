"""Proof: seeded DICOM mutations against a running gateway forwarding to a real Orthanc.

Mutated data sets and PDUs (``tests/support/dicomfuzz.py``: truncations, length fields,
bit flips, odd lengths, wrong presentation context ids, PDUs over the announced maximum,
mutated commands and A-ASSOCIATE-RQs), one association per case, one after another.
For every case:

* it is answered (a C-STORE response), or the association is rejected, aborted or
  released (a PDU type flipped to A-RELEASE-RQ), or the gateway closes it once the peer
  stops sending: nothing hangs, no connection is dropped unannounced;
* after a mutated data set that was answered, a valid instance on the same association
  is stored (a bad instance does not spoil its association);
* a C-ECHO on a new association succeeds (within the ACSE timeout: an A-ASSOCIATE-RQ
  the gateway aborts holds an association slot until then, a known limit).

At the end, every instance the gateway stored (all of them acknowledged) is in Orthanc
or its forward job is DEAD with a reason, and every DEAD one is refused by Orthanc when
sent alone (no instance was held up by a neighbour). The seed is printed;
``RISGATE_PROOF_SEED`` replays a run, ``RISGATE_PROOF=full`` runs 5,000 cases.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import random
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pynetdicom import AE
from sqlalchemy import create_engine, select

from gateway.core.models import Instance, Job, JobState
from gateway.operations.local_orthanc import LocalOrthanc
from tests.support import rawdicom as raw
from tests.support.destination import destination_for
from tests.support.dicomfuzz import VERIFICATION_CONTEXT, Case, DicomMutator, load_bases
from tests.support.gateway_proc import GatewayProcess

pytestmark = [
    pytest.mark.integration,
    pytest.mark.proof,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

FULL = os.environ.get("RISGATE_PROOF") == "full"
CASES = 5_000 if FULL else 150
MAX_PDU = 16_384
ANSWER_WAIT_S = 1.0  # then the peer stops sending (half-close) and waits for the end
END_WAIT_S = 30.0  # a gateway that neither answers nor closes by then hangs: a failure
DRAIN_S = 300 if FULL else 90
# An A-ASSOCIATE-RQ the gateway aborts as undecodable still holds one of its
# max_associations slots until the ACSE timeout (pynetdicom's association waits for the
# request that never comes): a run of them can fill every slot for that long.
ACSE_TIMEOUT_S = 5
ECHO_WITHIN_S = ACSE_TIMEOUT_S + 15


@dataclass
class Outcome:
    # answered, rejected, aborted, released, closed after the peer stopped, or dropped
    kind: str
    status: int | None = None
    follow_up: int | None = None  # a valid instance sent after it, same association


class Peer:
    """A raw association's socket, read PDU by PDU against deadlines."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, data: bytes) -> bool:
        """False if the gateway already closed the connection."""
        try:
            self.sock.sendall(data)
        except OSError:
            return False
        return True

    def read(self, wait_s: float) -> raw.Pdu | None:
        """The next PDU; None at the end of the connection; TimeoutError after ``wait_s``."""
        deadline = time.monotonic() + wait_s
        while True:
            if len(self.buffer) >= 6:
                length = struct.unpack_from(">I", self.buffer, 2)[0]
                if len(self.buffer) >= 6 + length:
                    pdu = raw.Pdu(self.buffer[0], self.buffer[6 : 6 + length])
                    self.buffer = self.buffer[6 + length :]
                    return pdu
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise
            except OSError:  # reset by the gateway
                return None
            if not chunk:
                return None
            self.buffer += chunk

    def stop_sending(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()


def _until_end(peer: Peer, outcome: Outcome, case: Case) -> Outcome:
    """The peer stops sending: read until the gateway closes (or aborts) the connection."""
    peer.stop_sending()
    deadline = time.monotonic() + END_WAIT_S
    while True:
        try:
            pdu = peer.read(deadline - time.monotonic())
        except TimeoutError:
            raise AssertionError(f"case {case.number} ({case.mutation}): gateway hangs") from None
        if pdu is None:
            if outcome.kind == "pending":
                outcome.kind = "closed after the peer stopped"
            return outcome
        if pdu.kind == 0x07 and outcome.kind == "pending":
            outcome.kind = "aborted"
        elif pdu.kind == 0x04 and pdu.status() is not None:
            outcome.kind, outcome.status = "answered", pdu.status()


def _run(port: int, case: Case, mutator: DicomMutator) -> Outcome:
    """Send one case; how the gateway took it. A connection the gateway drops while the
    peer is still sending, with no A-ABORT, is ``dropped``."""
    peer = Peer(port)
    outcome = Outcome("pending")
    try:
        peer.send(case.associate_rq)
        try:
            answer = peer.read(ANSWER_WAIT_S * 5)
        except TimeoutError:  # an A-ASSOCIATE-RQ whose length promises more
            return _until_end(peer, outcome, case)
        if answer is None:
            outcome.kind = "dropped"
            return outcome
        if answer.kind != 0x02:
            outcome.kind = {0x03: "rejected", 0x07: "aborted"}.get(answer.kind, "dropped")
            return _until_end(peer, outcome, case)
        if not peer.send(case.payload):
            outcome.kind = "dropped"
            return _until_end(peer, outcome, case)
        if not case.complete:
            return _until_end(peer, outcome, case)
        while True:
            try:
                pdu = peer.read(ANSWER_WAIT_S)
            except TimeoutError:  # the gateway waits for more: the peer has nothing more
                return _until_end(peer, outcome, case)
            if pdu is None:
                outcome.kind = "dropped"
                return outcome
            if pdu.kind in (0x06, 0x07):  # a PDU type flipped to A-RELEASE-RQ is one
                outcome.kind = "released" if pdu.kind == 0x06 else "aborted"
                return _until_end(peer, outcome, case)
            if pdu.kind == 0x04 and pdu.status() is not None:
                outcome.kind, outcome.status = "answered", pdu.status()
                break
        if case.mutation in mutator.dataset_mutations or case.mutation == "none":
            outcome.follow_up = _follow_up(peer, case, mutator)
        peer.send(raw.RELEASE_RQ)
        return _until_end(peer, outcome, case)
    finally:
        peer.close()


def _follow_up(peer: Peer, case: Case, mutator: DicomMutator) -> int | None:
    """A valid instance of the same base on the same association; its status."""
    base = next(b for b in mutator.bases if b.name == case.base)
    uid = f"{case.sop_uid}.1"
    command = raw.command(0x0001, case.sop_class, uid, msg_id=2)
    peer.send(mutator.frame(base.context_id, command, base.encode(uid)))
    try:
        pdu = peer.read(END_WAIT_S)
    except TimeoutError:
        raise AssertionError(f"case {case.number}: the follow-up got no answer") from None
    assert pdu is not None and pdu.kind == 0x04, f"case {case.number}: follow-up aborted"
    return pdu.status()


def _echo(port: int) -> int | None:
    peer = raw.RawAssociation(port, timeout=END_WAIT_S)
    try:
        if peer.associate("ECHOSCU").kind != 0x02:
            return None
        command = raw.command(0x0030, raw.VERIFICATION, None)
        peer.send(raw.p_data(VERIFICATION_CONTEXT, command, is_command=True))
        status = peer.receive().status()
        peer.send(raw.RELEASE_RQ)
        peer.receive()
        return status
    finally:
        peer.close()


def _echo_within(port: int, wait_s: float, case: Case) -> None:
    """A C-ECHO succeeds, at once or once the association slots held by aborted
    A-ASSOCIATE-RQs are free again (see ``ACSE_TIMEOUT_S``)."""
    deadline = time.monotonic() + wait_s
    while (status := _echo(port)) != 0x0000:
        assert time.monotonic() < deadline, f"case {case.number} ({case.mutation}): no echo"
        time.sleep(0.5)
    assert status == 0x0000


def _queue(gw: GatewayProcess) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """{instance pk: SOP Instance UID}, {instance pk: (forward job state, last error)}."""
    engine = create_engine(gw.config["database"]["url"])
    with engine.connect() as conn:
        instances = dict(conn.execute(select(Instance.id, Instance.sop_instance_uid)).all())
        jobs = conn.execute(
            select(Job.ref, Job.state, Job.last_error).where(Job.kind == "forward")
        ).all()
    engine.dispose()
    return (
        {str(pk): str(uid) for pk, uid in instances.items()},
        {str(ref): (str(state), str(error)) for ref, state, error in jobs},
    )


def _in_orthanc(orthanc: LocalOrthanc) -> set[str]:
    with orthanc.client() as client:
        found = client.post(
            "/tools/find", json={"Level": "Instance", "Query": {}, "Expand": True}
        ).json()
    return {item["MainDicomTags"]["SOPInstanceUID"] for item in found}


def _orthanc_refuses_alone(orthanc: LocalOrthanc, path: Path) -> bool:
    """Sent alone on its own association, Orthanc does not store the file."""
    ae = AE("STORESCU")
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate("127.0.0.1", orthanc.config.dicom_port, ae_title=orthanc.config.aet)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_store(path)
    finally:
        if assoc.is_established:
            assoc.release()
    return not status or status.Status != 0x0000


@pytest.mark.timeout(3600 if FULL else 300)
def test_dicom_fuzz_answered_echo_after_each_stored_ones_delivered_or_dead(
    gateway_factory: Any, orthanc: LocalOrthanc, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RISGATE_PROOF_SEED") or random.SystemRandom().randrange(1 << 31))
    print(f"DICOM fuzz seed {seed} (RISGATE_PROOF_SEED={seed} replays it), {CASES} cases")
    destination = destination_for(orthanc)
    gw: GatewayProcess = gateway_factory.make(
        {
            "dicom": {
                "max_pdu": MAX_PDU,
                "network_timeout_s": 10,
                "acse_timeout_s": ACSE_TIMEOUT_S,
            },
            "forward": {
                "destinations": [destination],
                "max_attempts": 3,
                "backoff_base_s": 0.2,
                "backoff_cap_s": 1.0,
            },
        }
    )
    gw.start()
    mutator = DicomMutator(
        seed, load_bases(tmp_path / "bases"), MAX_PDU, f"1.2.826.0.1.3680043.10.{seed}"
    )
    by_kind: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    successes: set[str] = set()
    for _ in range(CASES):
        case = mutator.next()
        outcome = _run(gw.dicom_port, case, mutator)
        assert outcome.kind != "dropped", f"case {case.number} ({case.mutation}): dropped"
        label = outcome.kind if outcome.status is None else f"status {outcome.status:#06x}"
        by_kind[case.mutation][label] += 1
        if outcome.status == 0x0000:
            successes.add(case.sop_uid)
        if outcome.follow_up is not None:
            assert outcome.follow_up == 0x0000, f"case {case.number}: follow-up refused"
            successes.add(f"{case.sop_uid}.1")
        if case.mutation == "none":
            assert outcome.status == 0x0000, f"case {case.number}: a valid instance refused"
        _echo_within(gw.dicom_port, ECHO_WITHIN_S, case)
        assert gw.process is not None and gw.process.poll() is None, "gateway died"

    # Forwarding settles: every stored instance in Orthanc or DEAD with a reason.
    deadline = time.monotonic() + DRAIN_S
    while True:
        instances, jobs = _queue(gw)
        try:
            delivered = _in_orthanc(orthanc)
        except httpx.HTTPError:
            delivered = set()
        settled = all(state in (JobState.DONE, JobState.DEAD) for state, _ in jobs.values())
        missing = {
            uid for pk, uid in instances.items()
            if uid not in delivered and jobs.get(pk, ("", ""))[0] != JobState.DEAD
        }  # fmt: skip
        if settled and not missing:
            break
        assert time.monotonic() < deadline, (
            f"not forwarded: {len(missing)}, {collections.Counter(s for s, _ in jobs.values())}"
        )
        time.sleep(1)

    stored = set(instances.values())
    assert successes <= stored, "acknowledged but not stored"
    dead = {pk: error for pk, (state, error) in jobs.items() if state == JobState.DEAD}
    assert all(error for error in dead.values()), "a DEAD job without a reason"
    assert set(jobs) == set(instances), "an instance without its forward job"
    engine = create_engine(gw.config["database"]["url"])
    with engine.connect() as conn:
        paths = dict(conn.execute(select(Instance.id, Instance.path)).all())
    engine.dispose()
    blocked = [
        instances[pk]
        for pk in dead
        if not _orthanc_refuses_alone(
            orthanc, gw.work / "var" / "store" / "instances" / paths[int(pk)]
        )
    ]
    assert not blocked, f"DEAD instances Orthanc accepts alone (held up by neighbours): {blocked}"

    labels: collections.Counter[str] = sum(by_kind.values(), collections.Counter())
    summary = {
        "seed": seed,
        "cases": CASES,
        "refused at receipt": sum(
            n for label, n in labels.items() if label.startswith("status") and "0x0000" not in label
        ),
        "aborted, rejected or released": labels["aborted"]
        + labels["rejected"]
        + labels["released"],
        "closed after the peer stopped": labels["closed after the peer stopped"],
        "acknowledged": len(successes),
        "delivered": len(stored & delivered),
        "dead with reason": len(dead),
        "by mutation": {k: dict(v) for k, v in sorted(by_kind.items())},
    }
    print("DICOM fuzz " + json.dumps(summary))
    assert summary["delivered"] + summary["dead with reason"] == len(stored)
