"""The reconciler's YAML configuration (same conventions as the gateway's)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgecount.settings import MqttConfig, Segment, StrictModel, resolve_path
from edgecount.yamlcfg import PATTERN_MESSAGES, load_model
from reconciler.email_config import EmailConfig
from reconciler.epcis.settings import EpcisConfig, LocationsConfig
from reconciler.rules import TolerancePolicy

SCHEMA_PATTERN = r"^[a-z_][a-z0-9_]{0,62}$"
PATTERN_MESSAGES[SCHEMA_PATTERN] = (
    "use 1-63 lower-case letters, digits or '_', starting with a letter or '_'"
)


class ApprovalLimits(StrictModel):
    """The largest discrepancy value (sum of the lines' absolute ``diff_value``) a role may
    decide. Admins have no limit; viewers and counters cannot decide at all."""

    approver: float = Field(default=1000.0, ge=0, allow_inf_nan=False)


class SigninLimit(StrictModel):
    """Failed sign-ins allowed per user name and per client address within a window."""

    attempts: int = Field(default=5, ge=1, le=1000)
    window_seconds: int = Field(default=300, ge=1, le=86400)


class ApiConfig(StrictModel):
    """The REST API (approvals, book snapshots, discrepancies) and who may use it."""

    host: str = "127.0.0.1"
    port: int = Field(default=8484, ge=0, le=65535)
    anonymous: tuple[Literal["/health", "/metrics"], ...] = ("/health", "/metrics")
    """Endpoints that answer without signing in (for probes and Prometheus); [] for none."""
    secure_cookies: bool = False
    """Mark the session cookie ``Secure``: set it whenever the API is reached over HTTPS
    (a TLS-terminating proxy in front), so the browser never sends it in clear."""
    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=24 * 30)
    signin_limit: SigninLimit = SigninLimit()
    approval_limits: ApprovalLimits = ApprovalLimits()


class PlanningConfig(StrictModel):
    """Cycle-count planning: days between counts per ABC class, and locations per night."""

    A: int = Field(default=7, ge=1)
    B: int = Field(default=14, ge=1)
    C: int = Field(default=30, ge=1)
    capacity: int | None = Field(default=None, ge=0)


class ReconcilerConfig(StrictModel):
    """The whole reconciler configuration file."""

    site: Segment
    instance_id: Segment = "reconciler"
    state_dir: Path = Path("/var/lib/edgecount-reconciler")
    mqtt: MqttConfig = MqttConfig()
    shared_group: Segment | None = None
    mqtt_session_expiry_seconds: int | None = Field(default=7 * 24 * 3600, ge=0, le=0xFFFFFFFF)
    """Persistent MQTT session: the broker keeps the subscriptions and queues QoS 1 messages
    this long while the reconciler is away (MQTT 3.1.1: clean session off, no expiry). null:
    clean start, and what is published while it is down is lost but for retained counts."""
    database: str | None = None
    database_schema: str | None = Field(default=None, pattern=SCHEMA_PATTERN)
    """PostgreSQL only: the schema holding this site's tables, so that many sites share one
    database (a central reconciler serving them all); null: the database's default schema."""
    tolerances: TolerancePolicy = TolerancePolicy()
    max_recounts: int = Field(default=2, ge=0, le=10)
    gateways: dict[Segment, Segment] = Field(default_factory=dict)
    authorized_gateways: dict[Segment, list[Segment]] | None = None
    api: ApiConfig | None = None
    planning: PlanningConfig = PlanningConfig()
    locations: LocationsConfig = LocationsConfig()
    """SGLNs of locations, for EPCIS (docs/epcis.md)."""
    epcis: EpcisConfig = EpcisConfig()
    """EPCIS 2.0 export and capture (docs/epcis.md)."""
    email: EmailConfig | None = None
    """The night's report by e-mail (``edgecount report send``); None: not configured."""

    _paths = field_validator("state_dir")(resolve_path)

    @model_validator(mode="after")
    def _routes_are_authorized(self) -> ReconcilerConfig:
        """A zone's recounts go to a gateway that may report that zone."""
        auth = self.authorization()
        if auth is None:
            return self
        for zone, gateway in self.gateways.items():
            if zone not in auth.get(gateway, frozenset()):
                raise ValueError(
                    f"gateways routes zone {zone!r} to {gateway!r}, which "
                    f"authorized_gateways does not allow to report {zone!r}"
                )
        return self

    def authorization(self) -> dict[str, frozenset[str]] | None:
        """Gateway → the zones it may report (``authorized_gateways``); None: any gateway."""
        if self.authorized_gateways is None:
            return None
        return {gw: frozenset(zones) for gw, zones in self.authorized_gateways.items()}

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL; default SQLite under ``state_dir``."""
        return self.database or f"sqlite:///{self.state_dir / 'reconciler.sqlite3'}"


def load_reconciler_config(path: Path) -> ReconcilerConfig:
    """Load and validate; raises ConfigError with file, line and key for every problem."""
    return load_model(path, ReconcilerConfig, context={"base_dir": path.parent})
