"""Study -> service and study -> machine mapping, from plain study facts.

Service mapping (service resolution), in order:
1. the site's explicit map (order procedure code, e.g. OBR-4, -> service code), using
   only entries in force on the study date;
2. the order's procedure code itself, when it names a service that the catalogue prices
   on the study date (Vietnamese HIS order imaging with the MoH service code, e.g.
   ``18.0149.0040^CT sọ não...^99BYT``; the coding-system label is not looked at);
3. configurable rules in force on the study date, in ascending ``priority`` (ties keep
   their given order): each tests modality, body part, contrast present and a
   number-of-instances range; the first matching rule wins;
4. otherwise an *unmapped* result whose reason lists what was tried.

Codes are compared after :func:`normalize_code` (Unicode NFKC, trimmed, upper-cased).
Map entries and rules carry optional effective dates (closed intervals, as in the
catalogue), because codes change by decision: Circular 23/2024 Annex 01 codes apply
until 31/12/2027, Annex 02 codes from 01/01/2028.

Machine mapping: device serial number first (it identifies the device), then the
station AE title; otherwise unmapped with the reason. Texts are compared after
trimming and upper-casing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pricing_norms.catalogue import Catalogue, in_force

__all__ = [
    "Delivery",
    "MachineMapper",
    "MachineResult",
    "MapEntry",
    "MappingMethod",
    "MappingResult",
    "MappingRule",
    "ServiceMapper",
    "StudyFacts",
    "normalize_code",
]

#: Contrast/Bolus Agent texts that mean "no contrast".
_NO_CONTRAST = {"", "NONE", "NO", "N", "KHONG", "KHÔNG", "0"}


def _norm(text: str | None) -> str:
    return (text or "").strip().upper()


def normalize_code(text: str | None) -> str:
    """A procedure/service code as compared: NFKC (full-width digits and dots become
    ASCII), surrounding whitespace (any Unicode space) removed, upper-cased."""
    return unicodedata.normalize("NFKC", text or "").strip().upper()


def _period(start: date | None, end: date | None) -> str:
    if start is None:
        return "always" if end is None else f"until {end.isoformat()}"
    return f"from {start.isoformat()}" if end is None else f"{start.isoformat()}..{end.isoformat()}"


def _valid_on(start: date | None, end: date | None, on: date) -> bool:
    return in_force(start or date.min, end, on)


class Delivery(StrEnum):
    """How a study's result was delivered, which chooses the film or the PACS price."""

    FILM = "film"
    FILMLESS = "filmless"


@dataclass(frozen=True, slots=True)
class StudyFacts:
    """What the gateway knows about a performed study (from DICOM, MPPS and the order).

    ``study_date`` may be given as a datetime; only its date is kept.
    ``contrast_agent`` is DICOM Contrast/Bolus Agent (0018,0010); ``contrast_volume_ml``
    its volume (0018,1041) when known. ``films_printed`` None = unknown.
    ``filmless`` says the result was delivered without film (then the PACS price
    applies); ``delivery_source`` says who said so (``staff``, ``mpps``,
    ``department``, ``default``). ``tyle_tt_dv`` is the service payment percentage
    (XML3 TYLE_TT_DV, 0..100) of the ordered service, 100 unless staff set it.
    """

    study_date: date
    modality: str
    body_part: str | None = None
    procedure_code: str | None = None
    contrast_agent: str | None = None
    contrast_volume_ml: Decimal | None = None
    number_of_instances: int | None = None
    station_ae: str | None = None
    device_serial: str | None = None
    department: str | None = None
    filmless: bool = False
    films_printed: int | None = None
    delivery_source: str = "default"
    tyle_tt_dv: int = 100

    def __post_init__(self) -> None:
        if isinstance(self.study_date, datetime):
            object.__setattr__(self, "study_date", self.study_date.date())
        if self.contrast_volume_ml is not None and not isinstance(self.contrast_volume_ml, Decimal):
            object.__setattr__(self, "contrast_volume_ml", Decimal(str(self.contrast_volume_ml)))
        if self.contrast_volume_ml is not None and self.contrast_volume_ml < 0:
            raise ValueError("contrast_volume_ml must not be negative")
        if self.films_printed is not None and self.films_printed < 0:
            raise ValueError("films_printed must not be negative")
        if not 0 <= self.tyle_tt_dv <= 100:
            raise ValueError("tyle_tt_dv must be a percentage 0..100")

    @property
    def delivery(self) -> Delivery:
        """The films printed decide when known (0 = filmless); else the ``filmless`` flag."""
        if self.films_printed is not None:
            return Delivery.FILM if self.films_printed > 0 else Delivery.FILMLESS
        return Delivery.FILMLESS if self.filmless else Delivery.FILM

    @property
    def has_contrast(self) -> bool:
        """Contrast present: an agent text that is not "none", or a positive volume."""
        if self.contrast_volume_ml is not None and self.contrast_volume_ml > 0:
            return True
        return _norm(self.contrast_agent) not in _NO_CONTRAST


class MappingMethod(StrEnum):
    """How a mapping result was obtained."""

    PROCEDURE_CODE = "procedure_code"  # the site's explicit map
    SERVICE_CODE = "service_code"  # the order's procedure code is a catalogue service
    RULE = "rule"
    DEVICE_SERIAL = "device_serial"
    STATION_AE = "station_ae"
    UNMAPPED = "unmapped"


@dataclass(frozen=True, slots=True)
class MappingRule:
    """A rule: every condition that is not None must hold. Instance range is inclusive;
    the rule applies only to studies dated within ``effective_from..effective_to``."""

    rule_id: str
    service_code: str
    modality: str
    priority: int = 100
    body_parts: frozenset[str] | None = None
    contrast: bool | None = None
    min_instances: int | None = None
    max_instances: int | None = None
    effective_from: date | None = None
    effective_to: date | None = None

    def __post_init__(self) -> None:
        start, end = self.effective_from, self.effective_to
        if start is not None and end is not None and end < start:
            raise ValueError(f"rule {self.rule_id}: effective_to {end} before {start}")

    def mismatch(self, facts: StudyFacts) -> str | None:
        """None if the rule matches ``facts``, else why not."""
        if not _valid_on(self.effective_from, self.effective_to, facts.study_date):
            period = _period(self.effective_from, self.effective_to)
            return f"not in force on {facts.study_date} ({period})"
        if _norm(facts.modality) != _norm(self.modality):
            return f"modality {facts.modality!r} != {self.modality}"
        if self.body_parts is not None and _norm(facts.body_part) not in {
            _norm(b) for b in self.body_parts
        }:
            return f"body part {facts.body_part!r} not in {sorted(self.body_parts)}"
        if self.contrast is not None and facts.has_contrast != self.contrast:
            return f"contrast {facts.has_contrast} != {self.contrast}"
        if self.min_instances is not None or self.max_instances is not None:
            count = facts.number_of_instances
            if count is None:
                return "number of instances unknown"
            if self.min_instances is not None and count < self.min_instances:
                return f"{count} instances < {self.min_instances}"
            if self.max_instances is not None and count > self.max_instances:
                return f"{count} instances > {self.max_instances}"
        return None


@dataclass(frozen=True, slots=True)
class MappingResult:
    """A service mapping outcome; ``service_code`` is None when unmapped."""

    service_code: str | None
    method: MappingMethod
    reason: str
    rule_id: str | None = None

    @property
    def mapped(self) -> bool:
        """True if a service was found."""
        return self.service_code is not None


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One site map entry: local procedure code -> service code, valid over a period
    (``None`` ends mean unbounded)."""

    local_code: str
    service_code: str
    effective_from: date | None = None
    effective_to: date | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "local_code", normalize_code(self.local_code))
        if not self.local_code:
            raise ValueError("site map entry with an empty procedure code")
        start, end = self.effective_from, self.effective_to
        if start is not None and end is not None and end < start:
            raise ValueError(f"site map {self.local_code}: effective_to {end} before {start}")

    def in_force(self, on: date) -> bool:
        """True if the entry applies to a study dated ``on``."""
        return _valid_on(self.effective_from, self.effective_to, on)

    @property
    def period(self) -> str:
        """The validity as text (``always`` or ``from..to``)."""
        return _period(self.effective_from, self.effective_to)


def _overlap(a: MapEntry, b: MapEntry) -> bool:
    a_from, b_from = a.effective_from or date.min, b.effective_from or date.min
    return (b.effective_to is None or a_from <= b.effective_to) and (
        a.effective_to is None or b_from <= a.effective_to
    )


@dataclass(frozen=True)
class ServiceMapper:
    """Site map first, then the order's code as a catalogue service, then rules.

    ``procedure_map`` holds undated entries (local code -> service code), ``entries``
    dated ones; two entries of one code must not be in force on the same day.
    """

    procedure_map: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[MappingRule, ...] = ()
    entries: tuple[MapEntry, ...] = ()
    _by_code: Mapping[str, tuple[MapEntry, ...]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        table = {normalize_code(k): v for k, v in self.procedure_map.items()}
        object.__setattr__(self, "procedure_map", table)
        all_entries = (*(MapEntry(k, v) for k, v in table.items()), *self.entries)
        by_code: dict[str, list[MapEntry]] = {}
        for entry in all_entries:
            same = by_code.setdefault(entry.local_code, [])
            clash = next((e for e in same if _overlap(e, entry)), None)
            if clash is not None:
                raise ValueError(
                    f"site map {entry.local_code}: {entry.period} -> {entry.service_code} "
                    f"overlaps {clash.period} -> {clash.service_code}"
                )
            same.append(entry)
        object.__setattr__(self, "entries", tuple(all_entries))
        object.__setattr__(self, "_by_code", {k: tuple(v) for k, v in by_code.items()})
        ordered = sorted(enumerate(self.rules), key=lambda pair: (pair[1].priority, pair[0]))
        object.__setattr__(self, "rules", tuple(rule for _, rule in ordered))

    def map(self, facts: StudyFacts, catalogue: Catalogue | None = None) -> MappingResult:
        """Map a study to a service code (pure, deterministic); ``catalogue`` enables
        step 2 (the order's code taken as a service code of the catalogue)."""
        code = normalize_code(facts.procedure_code)
        day = facts.study_date
        tried: list[str] = []
        if code:
            entries: tuple[MapEntry, ...] = self._by_code.get(code, ())
            entry = next((e for e in entries if e.in_force(day)), None)
            if entry is not None:
                period = "" if entry.period == "always" else f" (valid {entry.period})"
                return MappingResult(
                    entry.service_code,
                    MappingMethod.PROCEDURE_CODE,
                    f"procedure code {code} in site map -> {entry.service_code}{period}",
                )
            if entries:
                periods = ", ".join(e.period for e in entries)
                tried.append(f"site map: {code} has no entry in force on {day} ({periods})")
            else:
                tried.append(f"site map: no entry for {code}")
            if catalogue is None:
                tried.append("catalogue: not consulted")
            elif catalogue.service_in_force(code, day) is not None:
                return MappingResult(
                    code,
                    MappingMethod.SERVICE_CODE,
                    f"procedure code {code} is a service of the catalogue in force on {day}",
                )
            elif catalogue.service(code) is not None:
                tried.append(f"catalogue: service {code} has no price in force on {day}")
            else:
                tried.append(f"catalogue: {code} is not a service of the catalogue")
        else:
            tried.append("no procedure code on the order")
        misses: list[str] = []
        for rule in self.rules:
            why_not = rule.mismatch(facts)
            if why_not is None:
                return MappingResult(
                    rule.service_code, MappingMethod.RULE, f"rule {rule.rule_id}", rule.rule_id
                )
            misses.append(f"{rule.rule_id}: {why_not}")
        detail = "; ".join(misses) if misses else "no rules configured"
        tried.append(f"rules: none matched ({detail})")
        return MappingResult(None, MappingMethod.UNMAPPED, "; ".join(tried))

    def check(self, catalogue: Catalogue) -> list[str]:
        """Problems with the configuration against a catalogue (unknown service codes)."""
        problems = [
            f"procedure code {e.local_code} -> unknown service {e.service_code}"
            for e in self.entries
            if catalogue.service(e.service_code) is None
        ]
        problems += [
            f"rule {r.rule_id} -> unknown service {r.service_code}"
            for r in self.rules
            if catalogue.service(r.service_code) is None
        ]
        return problems


@dataclass(frozen=True, slots=True)
class MachineResult:
    """A machine mapping outcome; ``machine_code`` (MA_MAY) is None when unmapped."""

    machine_code: str | None
    method: MappingMethod
    reason: str

    @property
    def mapped(self) -> bool:
        """True if a machine was found."""
        return self.machine_code is not None


@dataclass(frozen=True)
class MachineMapper:
    """Device serial number -> MA_MAY first, then station AE title -> MA_MAY."""

    by_serial: Mapping[str, str] = field(default_factory=dict)
    by_station_ae: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_serial", {_norm(k): v for k, v in self.by_serial.items()})
        object.__setattr__(
            self, "by_station_ae", {_norm(k): v for k, v in self.by_station_ae.items()}
        )

    def map(self, facts: StudyFacts) -> MachineResult:
        """Map a study to a machine code (pure, deterministic)."""
        serial = _norm(facts.device_serial)
        if serial and serial in self.by_serial:
            return MachineResult(
                self.by_serial[serial], MappingMethod.DEVICE_SERIAL, f"device serial {serial}"
            )
        station = _norm(facts.station_ae)
        if station and station in self.by_station_ae:
            return MachineResult(
                self.by_station_ae[station], MappingMethod.STATION_AE, f"station AE {station}"
            )
        parts = [
            f"device serial {serial or '(none)'} unknown",
            f"station AE {station or '(none)'} unknown",
        ]
        return MachineResult(None, MappingMethod.UNMAPPED, "; ".join(parts))

    def check(self, catalogue: Catalogue) -> list[str]:
        """Targets that are not machines of the catalogue."""
        pairs: Iterable[tuple[str, str]] = [
            *(("serial " + k, v) for k, v in self.by_serial.items()),
            *(("AE " + k, v) for k, v in self.by_station_ae.items()),
        ]
        return [f"{k} -> unknown machine {v}" for k, v in pairs if catalogue.machine(v) is None]
