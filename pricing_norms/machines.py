"""Dated MA_MAY master data: which XML3 machine code a machine carries on a given day.

Costing resolves a study's machine (station AE title or device serial -> the catalogue's
machine code, ``costing.machine_by_station`` / ``machine_by_serial``); the claim needs
that machine's MA_MAY (``XX.n.YYYYY.Z``: type, funding source 1 state / 2 socialised /
3 other, facility code, serial), which changes when a machine is re-registered or its
funding changes. :class:`MachineCodes` holds the periods and answers for a date; it
refuses codes of the wrong format and overlapping periods of one machine.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from itertools import pairwise

from pricing_norms.claims import MA_MAY_RE

__all__ = ["MachineCode", "MachineCodes"]


@dataclass(frozen=True, slots=True)
class MachineCode:
    """``machine`` carries ``ma_may`` from ``valid_from`` to ``valid_to`` (inclusive, None
    for open-ended)."""

    machine: str
    ma_may: str
    valid_from: date
    valid_to: date | None = None

    def covers(self, day: date) -> bool:
        """True if the code is in force on ``day``."""
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)


class MachineCodes:
    """Look-up of the MA_MAY in force for a machine on a day."""

    def __init__(self, entries: Iterable[MachineCode] = ()) -> None:
        by_machine: dict[str, list[MachineCode]] = defaultdict(list)
        for entry in entries:
            if not MA_MAY_RE.match(entry.ma_may):
                raise ValueError(f"MA_MAY {entry.ma_may!r} is not XX.n.YYYYY.Z")
            if entry.valid_to is not None and entry.valid_to < entry.valid_from:
                raise ValueError(f"MA_MAY {entry.ma_may}: valid_to is before valid_from")
            by_machine[entry.machine.strip().upper()].append(entry)
        for machine, periods in by_machine.items():
            periods.sort(key=lambda e: e.valid_from)
            for before, after in pairwise(periods):
                if before.valid_to is None or before.valid_to >= after.valid_from:
                    raise ValueError(f"machine {machine}: MA_MAY periods overlap")
        self._by_machine = dict(by_machine)

    def on(self, machine: str | None, day: date) -> str | None:
        """The MA_MAY of ``machine`` on ``day``, or None if none is in force."""
        if not machine:
            return None
        for entry in self._by_machine.get(machine.strip().upper(), ()):
            if entry.covers(day):
                return entry.ma_may
        return None
