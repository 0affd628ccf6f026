"""Service settings: one TOML file plus ``RISGATE_<SECTION>__<KEY>`` environment overrides.

Every key is validated at start-up; :func:`load_settings` turns pydantic's errors into one
message that names each bad key. ``docs/configuration.md`` lists every key and default.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dicom_nodes.config import DicomSettings
from dicom_nodes.identifiers import validate_ae_title
from pricing_norms.claims import MA_MAY_RE
from pricing_norms.machines import MachineCode, MachineCodes
from pricing_norms.mapping import MapEntry, ServiceMapper

CONFIG_ENV = "RISGATE_CONFIG"
_config_file: str | None = None  # set by load_settings() while it builds Settings


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HL7Settings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=2575, ge=0, le=65535)
    allowed_sources: list[str] = Field(default_factory=list)
    max_message_bytes: int = Field(default=1_048_576, ge=1024)
    idle_timeout_s: float = Field(default=300.0, gt=0)
    retention_days: float = Field(default=90.0, gt=0)
    default_charset: str = "utf-8"
    fallback_charset: str = "latin-1"
    visit_number_field: str = Field(default="PV1-19", pattern="^(PV1-19|PV1-50|PID-18)$")
    # MLLP over TLS on hl7.port when a certificate is set.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_ca_file: Path | None = None
    tls_require_client_cert: bool = False


class WorklistSettings(_Section):
    max_results: int = Field(default=500, ge=1, le=100_000)
    modality_from_calling_ae: bool = True


class HTTPSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # HTTPS when both are set.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


class DatabaseSettings(_Section):
    url: str | None = None
    url_file: Path | None = None  # a file holding the URL (it carries the password)
    sqlite_synchronous: str = Field(default="FULL", pattern="^(FULL|NORMAL|EXTRA)$")
    echo: bool = False


class StoreSettings(_Section):
    path: Path | None = None
    fsync: bool = True


class StudySettings(_Section):
    stable_after_s: float = Field(default=30.0, gt=0)


class DestinationSettings(_Section):
    """A PACS or DICOM node that studies are forwarded to."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    protocol: str = Field(default="dicom", pattern="^(dicom|rest)$")
    host: str = "127.0.0.1"
    port: int = Field(default=4242, ge=1, le=65535)
    ae_title: str = "ORTHANC"
    url: str | None = "http://127.0.0.1:8042"
    username: str | None = "risgate"
    # Secrets: prefer password_file or RISGATE_FORWARD__... environment; none by default.
    password: str | None = None
    password_file: Path | None = None
    calling_aes: list[str] = Field(default_factory=list)
    modalities: list[str] = Field(default_factory=list)
    sop_classes: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=30.0, gt=0)
    associations: int = Field(default=1, ge=1, le=16)

    _ae = field_validator("ae_title")(validate_ae_title)

    def secret(self) -> str | None:
        """The password, read from ``password_file`` when one is given."""
        if self.password_file is not None:
            return self.password_file.read_text().strip()
        return self.password


def _default_destinations() -> list[DestinationSettings]:
    return [DestinationSettings(name="orthanc")]


class ForwardSettings(_Section):
    destinations: list[DestinationSettings] = Field(default_factory=_default_destinations)
    max_attempts: int = Field(default=12, ge=1)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_cap_s: float = Field(default=300.0, gt=0)
    batch_size: int = Field(default=64, ge=1, le=1000)
    lease_s: float = Field(default=30.0, gt=0)
    verify: bool = True
    verify_retry_s: float = Field(default=10.0, gt=0)
    retention_hours: float = Field(default=24.0, ge=0)
    disk_high_water_percent: float = Field(default=90.0, gt=0, le=100)


_SERVICE_CODE = r"^[0-9]{2}\.[0-9]{4}\.[0-9]{4}$"


class DatedServiceCode(_Section):
    """One dated target of the site map: the service code for studies in the period."""

    service_code: str = Field(pattern=_SERVICE_CODE)
    effective_from: date | None = None
    effective_to: date | None = None


class CostingRule(_Section):
    """A study -> service rule (see ``pricing_norms.mapping.MappingRule``)."""

    rule_id: str
    service_code: str = Field(pattern=r"^[0-9]{2}\.[0-9]{4}\.[0-9]{4}$")
    modality: str
    priority: int = 100
    body_parts: list[str] | None = None
    contrast: bool | None = None
    min_instances: int | None = Field(default=None, ge=0)
    max_instances: int | None = Field(default=None, ge=0)
    effective_from: date | None = None
    effective_to: date | None = None

    @model_validator(mode="after")
    def _period(self) -> CostingRule:
        start, end = self.effective_from, self.effective_to
        if start is not None and end is not None and end < start:
            raise ValueError(f"rule {self.rule_id}: effective_to {end} is before {start}")
        return self


class CostingSettings(_Section):
    """Study -> service / machine mapping and per-department film policy for costing.

    ``procedure_map`` maps a local procedure code either to one service code (always
    valid) or to a list of dated service codes (``effective_from``/``effective_to``).
    """

    procedure_map: dict[str, str | list[DatedServiceCode]] = Field(default_factory=dict)
    rules: list[CostingRule] = Field(default_factory=list)
    machine_by_station: dict[str, str] = Field(default_factory=dict)
    machine_by_serial: dict[str, str] = Field(default_factory=dict)
    use_example_mapping: bool = False
    default_department: str = Field(default="", max_length=64)
    filmless_departments: list[str] = Field(default_factory=list)
    filmless_default: bool = False

    def site_map(self) -> list[MapEntry]:
        """``procedure_map`` as dated entries (a plain service code is always valid)."""
        return [
            MapEntry(code, t)
            if isinstance(t, str)
            else MapEntry(code, t.service_code, t.effective_from, t.effective_to)
            for code, target in self.procedure_map.items()
            for t in ([target] if isinstance(target, str) else target)
        ]

    @model_validator(mode="after")
    def _site_map_is_unambiguous(self) -> CostingSettings:
        ServiceMapper(entries=tuple(self.site_map()))  # ValueError: overlap, reversed dates
        return self


class BillingMachine(_Section):
    """One period of a machine's MA_MAY (``pricing_norms.machines.MachineCode``)."""

    machine: str = Field(min_length=1, max_length=64)
    ma_may: str = Field(pattern=MA_MAY_RE.pattern)
    valid_from: date
    valid_to: date | None = None


class BillingSettings(_Section):
    """Claim exports (XML3/XML2): where MA_LK comes from, dated MA_MAY master data."""

    ma_lk_source: str = Field(default="visit_number", pattern="^(visit_number|accession_number)$")
    machines: list[BillingMachine] = Field(default_factory=list)

    @field_validator("machines")
    @classmethod
    def _periods(cls, value: list[BillingMachine]) -> list[BillingMachine]:
        MachineCodes(MachineCode(**m.model_dump()) for m in value)  # format, overlaps
        return value

    def machine_codes(self) -> MachineCodes:
        """The dated MA_MAY look-up."""
        return MachineCodes(MachineCode(**m.model_dump()) for m in self.machines)


class ReconcileSettings(_Section):
    unmatched: str = Field(default="forward", pattern="^(hold|forward)$")
    date_window_days: int = Field(default=1, ge=0, le=30)
    modifying_system: str = "RISGATE"


class NotifySettings(_Section):
    """Results back to the EMR (ORU^R01 over MLLP) once a matched study is verified."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=2576, ge=1, le=65535)
    version: str = Field(default="2.5", pattern=r"^2\.(3|3\.1|4|5|5\.1)$")
    sending_facility: str = ""
    receiving_application: str = "EMR"
    receiving_facility: str = ""
    viewer_url_template: str = "{orthanc_url}/app/explorer.html#study?uuid={orthanc_study_id}"
    send_orm_status: bool = False
    timeout_s: float = Field(default=10.0, gt=0)
    max_attempts: int = Field(default=20, ge=1)
    # MLLP over TLS to the EMR, verified against tls_ca_file (or the system CAs).
    tls: bool = False
    tls_ca_file: Path | None = None
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None


class CommitmentSettings(_Section):
    """Storage Commitment (Push Model) SCP: how long to wait, how to report back."""

    timeout_s: float = Field(default=3600.0, gt=0)
    check_interval_s: float = Field(default=5.0, gt=0)
    max_references: int = Field(default=50_000, ge=1)
    report_timeout_s: float = Field(default=10.0, gt=0)
    report_max_attempts: int = Field(default=20, ge=1)
    report_retry_base_s: float = Field(default=5.0, gt=0)
    report_retry_cap_s: float = Field(default=300.0, gt=0)


class WorkerSettings(_Section):
    poll_interval_s: float = Field(default=1.0, gt=0)


class LogSettings(_Section):
    level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    json_format: bool = True


class AuthSettings(_Section):
    """Login sessions of the web UI."""

    session_hours: float = Field(default=12.0, gt=0, le=24 * 30)
    # Secure flag on the session cookie: None = when the request came over HTTPS.
    cookie_secure: bool | None = None


class MetricsSettings(_Section):
    """``/metrics``: open when no token is set, else ``Authorization: Bearer <token>``."""

    token: str | None = None
    token_file: Path | None = None

    def secret(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.read_text().strip() or None
        return self.token or None


class UISettings(_Section):
    """The web UI: the PACS viewer link and the series previews."""

    viewer_url: str = "http://127.0.0.1:8042/ui/app/#/viewer?StudyInstanceUIDs={study_uid}"
    default_language: str = Field(default="vi", pattern="^(vi|en)$")
    thumbnail_size: int = Field(default=256, ge=32, le=1024)
    thumbnail_format: str = Field(default="png", pattern="^(png|jpeg)$")


class Settings(BaseSettings):
    """All settings of one gateway process."""

    model_config = SettingsConfigDict(
        env_prefix="RISGATE_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path("./var")
    dicom: DicomSettings = Field(default_factory=DicomSettings)
    hl7: HL7Settings = Field(default_factory=HL7Settings)
    worklist: WorklistSettings = Field(default_factory=WorklistSettings)
    http: HTTPSettings = Field(default_factory=HTTPSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    studies: StudySettings = Field(default_factory=StudySettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    costing: CostingSettings = Field(default_factory=CostingSettings)
    billing: BillingSettings = Field(default_factory=BillingSettings)
    forward: ForwardSettings = Field(default_factory=ForwardSettings)
    commitment: CommitmentSettings = Field(default_factory=CommitmentSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    ui: UISettings = Field(default_factory=UISettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = _config_file or os.environ.get(CONFIG_ENV)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @property
    def store_path(self) -> Path:
        return (self.store.path or self.data_dir / "store").resolve()

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        if self.database.url_file:
            return self.database.url_file.read_text().strip()
        return f"sqlite:///{(self.data_dir / 'risgate.db').resolve()}"


class SettingsError(Exception):
    """Invalid configuration; the message names every bad key."""


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``config_file`` (or ``$RISGATE_CONFIG``) and the environment."""
    global _config_file
    path = Path(config_file) if config_file is not None else None
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is not None and not path.is_file():
        raise SettingsError(f"configuration file not found: {path}")
    _config_file = str(path) if path else None
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(root)"
            lines.append(f"  {key}: {err['msg']}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
    finally:
        _config_file = None
