"""Study -> service and study -> machine mapping, from plain study facts.

Service mapping, in order:
1. the explicit procedure-code table (order procedure code, e.g. OBR-4 -> service code);
2. configurable rules in ascending ``priority`` (ties keep their given order): each rule
   tests modality, body part, contrast present and a number-of-instances range; the
   first matching rule wins;
3. otherwise an *unmapped* result carrying the reason.

Machine mapping: device serial number first (it identifies the device), then the
station AE title; otherwise unmapped with the reason. Texts are compared after
trimming and upper-casing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from pricing_norms.catalogue import Catalogue

__all__ = [
    "MachineMapper",
    "MachineResult",
    "MappingMethod",
    "MappingResult",
    "MappingRule",
    "ServiceMapper",
    "StudyFacts",
]

#: Contrast/Bolus Agent texts that mean "no contrast".
_NO_CONTRAST = {"", "NONE", "NO", "N", "KHONG", "KHÔNG", "0"}


def _norm(text: str | None) -> str:
    return (text or "").strip().upper()


@dataclass(frozen=True, slots=True)
class StudyFacts:
    """What the gateway knows about a performed study (from DICOM, MPPS and the order).

    ``study_date`` may be given as a datetime; only its date is kept.
    ``contrast_agent`` is DICOM Contrast/Bolus Agent (0018,0010); ``contrast_volume_ml``
    its volume (0018,1041) when known. ``films_printed`` None = unknown.
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

    def __post_init__(self) -> None:
        if isinstance(self.study_date, datetime):
            object.__setattr__(self, "study_date", self.study_date.date())
        if self.contrast_volume_ml is not None and not isinstance(self.contrast_volume_ml, Decimal):
            object.__setattr__(self, "contrast_volume_ml", Decimal(str(self.contrast_volume_ml)))
        if self.contrast_volume_ml is not None and self.contrast_volume_ml < 0:
            raise ValueError("contrast_volume_ml must not be negative")
        if self.films_printed is not None and self.films_printed < 0:
            raise ValueError("films_printed must not be negative")

    @property
    def has_contrast(self) -> bool:
        """Contrast present: an agent text that is not "none", or a positive volume."""
        if self.contrast_volume_ml is not None and self.contrast_volume_ml > 0:
            return True
        return _norm(self.contrast_agent) not in _NO_CONTRAST


class MappingMethod(StrEnum):
    """How a mapping result was obtained."""

    PROCEDURE_CODE = "procedure_code"
    RULE = "rule"
    DEVICE_SERIAL = "device_serial"
    STATION_AE = "station_ae"
    UNMAPPED = "unmapped"


@dataclass(frozen=True, slots=True)
class MappingRule:
    """A rule: every condition that is not None must hold. Instance range is inclusive."""

    rule_id: str
    service_code: str
    modality: str
    priority: int = 100
    body_parts: frozenset[str] | None = None
    contrast: bool | None = None
    min_instances: int | None = None
    max_instances: int | None = None

    def mismatch(self, facts: StudyFacts) -> str | None:
        """None if the rule matches ``facts``, else why not."""
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


@dataclass(frozen=True)
class ServiceMapper:
    """Procedure-code table first, then rules by priority, else unmapped."""

    procedure_map: Mapping[str, str] = field(default_factory=dict)
    rules: tuple[MappingRule, ...] = ()

    def __post_init__(self) -> None:
        table = {_norm(k): v for k, v in self.procedure_map.items()}
        object.__setattr__(self, "procedure_map", table)
        ordered = sorted(enumerate(self.rules), key=lambda pair: (pair[1].priority, pair[0]))
        object.__setattr__(self, "rules", tuple(rule for _, rule in ordered))

    def map(self, facts: StudyFacts) -> MappingResult:
        """Map a study to a service code (pure, deterministic)."""
        code = _norm(facts.procedure_code)
        if code and code in self.procedure_map:
            return MappingResult(
                self.procedure_map[code],
                MappingMethod.PROCEDURE_CODE,
                f"procedure code {code} in mapping table",
            )
        misses: list[str] = []
        for rule in self.rules:
            why_not = rule.mismatch(facts)
            if why_not is None:
                return MappingResult(
                    rule.service_code, MappingMethod.RULE, f"rule {rule.rule_id}", rule.rule_id
                )
            misses.append(f"{rule.rule_id}: {why_not}")
        head = f"procedure code {code} not in mapping table" if code else "no procedure code"
        detail = "; ".join(misses) if misses else "no rules configured"
        return MappingResult(None, MappingMethod.UNMAPPED, f"{head}; no rule matched ({detail})")

    def check(self, catalogue: Catalogue) -> list[str]:
        """Problems with the configuration against a catalogue (unknown service codes)."""
        problems = [
            f"procedure code {k} -> unknown service {v}"
            for k, v in self.procedure_map.items()
            if catalogue.service(v) is None
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
