"""Typed settings: one optional TOML file plus `PHM_` environment variables.

Every piece of state lives under one folder, `PHM_HOME` (default `~/.phm`), so a new user never
creates folders by hand. Precedence, highest first: explicit arguments, environment variables,
the TOML file (`PHM_CONFIG`, else `$PHM_HOME/phm.toml`), defaults.

This module is the foundation layer: it imports nothing else from the project.
"""

from __future__ import annotations

import ipaddress
import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from phm.core import redact
from phm.core.database_url import check as check_database_url
from phm.core.config import SCHEMA_VERSION_HELP, Strict, check_schema_version, explain
from phm.core.settings_file import SettingsFileError, SettingsFileSource, config_file, default_home

#: Key used only for the embedded synthetic data. Never used for real extracts.
DEMO_PSEUDONYM_KEY = "phm-demo-key-for-synthetic-data-only"
_LEVEL = lambda v: v.upper() if isinstance(v, str) else v  # noqa: E731 - a log level in any case
#: Every file and folder PHM creates is for its owner only (0600 files, 0700 folders).
OWNER_ONLY_UMASK = 0o077


class ShrinkPolicy(BaseModel):
    """How far a load may shrink the current warehouse before it is refused (`phm data load --allow-shrink`
    overrides): an empty, header-only or truncated extract must never replace a good warehouse."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    population: float = Field(0.10, ge=0, le=1, description="Largest allowed fall in patients loaded (0.10 = 10%).")
    source: float = Field(0.25, ge=0, le=1, description="Largest allowed fall in the rows loaded from any one source.")


def _config_file() -> Path:
    return config_file()[0]


class DisclosureSettings(BaseModel):
    """Small-number rules for every aggregate the service releases (`evaluation.disclosure.Policy`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    suppress_max: int = Field(7, ge=0, le=1000, description="Counts of 1 to this many people are hidden.")
    round_to: int = Field(5, ge=1, le=1000, description="Shown counts are rounded to the nearest multiple of this.")
    mean_decimals: int = Field(3, ge=1, le=8, description="Decimal places of shown means (0.001 = 0.1%).")


class ServiceSettings(BaseModel):
    """The web service: sessions, proxies and metrics."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    session_hours: float = Field(8, gt=0, le=24, description="A signed-in session ends this long after sign-in.")
    idle_minutes: float = Field(30, gt=0, le=24 * 60, description="... or after this long without a request.")
    trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="Addresses (or CIDR ranges) of reverse proxies whose X-Forwarded-Proto/-For are believed; "
        "cookies are marked Secure when such a proxy says the browser used https. [] trusts none.",
    )
    metrics: Literal["off", "data_scientist", "open"] = Field(
        "off", description="BentoML's /metrics: off, behind a data scientist's token, or open (private networks)."
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        """Each an IP address or network, as the server matches them: it silently never matches anything else (a
        host name, a port, a mistyped range), and would believe every client's forwarded headers on "*"."""
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=True)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network such as 10.0.0.5 or 10.0.0.0/24 (all addresses, "
                    "which lets any client forge its address in the access log, is 0.0.0.0/0 and ::/0)"
                ) from None
        return value


#: How long each contact outcome hides a person from the worklist: days, or "until_changed" (hidden until a later
#: outcome is recorded for them, e.g. while enrolled in case management).
HideFor = int | Literal["until_changed"]


class OutcomeHide(Strict):
    """Per outcome code, how long it hides the person from coordinators' worklists (`[outcomes.hide]`)."""

    contacted: HideFor = Field(28, description="Days a person contacted stays off the worklist.")
    enrolled: HideFor = Field(
        "until_changed",
        description="Enrolled in case management: hidden while enrolled (until a later outcome is recorded).",
    )
    declined: HideFor = Field(182, description="Days after a person declined (about 6 months).")
    not_appropriate: HideFor = Field(365, description="Days after a person was judged not appropriate (12 months).")
    other_team: HideFor = Field(182, description="Days after a person was found already under another team.")
    moved_or_died: HideFor = Field("until_changed", description="Moved away or died: hidden until changed.")

    @field_validator("*")
    @classmethod
    def _days(cls, value: HideFor) -> HideFor:
        if isinstance(value, int) and not 0 <= value <= 3660:
            raise ValueError('a hiding period is 0 to 3660 days, or "until_changed"')
        return value


class OutcomeSettings(Strict):
    """Contact outcomes recorded by care coordinators."""

    hide: OutcomeHide = Field(default_factory=OutcomeHide)
    note_max: int = Field(200, ge=0, le=1000, description="Longest optional note on an outcome (characters).")


class SettingsError(ValueError):
    """The settings cannot be read (an unknown key, a bad value, another schema version); names the key."""


class OperatingPolicy(Strict):
    """How a deployed model is used: part of the configuration a clinical safety officer approves, so changing it
    stops the daily job and the service from using the model until the change is approved."""

    top_share: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="The share of the eligible population acted on (0.05 = the 5% at highest "
        "risk): the people put on coordinators' worklists, or warned, and the operating point at which the bias "
        "report judges fairness. Default: the worklist model's last band cut-off; a column model's specification.",
    )
    bands: dict[str, float] | None = Field(
        None,
        description="Worklist band cut-offs of the worklist model, highest band first: band name -> the top "
        "share of people in that band or a higher one (default: the model specification's, e.g. very high 0.005, "
        "high 0.02, raised 0.05). The names are the specification's.",
    )
    holdout_share: float | None = Field(
        None,
        ge=0,
        lt=0.5,
        description="Random holdout of the worklist model (Liley et al.): the share of the people "
        "it would list who are held out at random and never listed, so that monitoring and safe retraining can see "
        "outcomes without the programme (0.05 = one in twenty). A clinical safety officer's decision: part of the "
        "approved configuration, recorded in the hazard log. Default none (0).",
    )

    @field_validator("bands")
    @classmethod
    def _increasing(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        shares = list(value.values())
        if not value or any(not 0 < s < 1 for s in shares):
            raise ValueError("each band cut-off is a share of people between 0 and 1 (0.05 = the top 5%)")
        if any(b <= a for a, b in zip(shares, shares[1:])):
            raise ValueError(
                "band cut-offs must grow from the highest band to the lowest "
                f"(got {', '.join(f'{k} {v:g}' for k, v in value.items())})"
            )
        return value


class Settings(BaseSettings):
    """Resolved configuration of a PHM installation. Unknown keys in `phm.toml` (or passed in code) are errors;
    environment variables are read only for the settings below (other `PHM_*` variables are ignored)."""

    model_config = SettingsConfigDict(env_prefix="PHM_", extra="forbid", frozen=True)

    schema_version: int = Field(1, description=SCHEMA_VERSION_HELP)
    home: Path = Field(default_factory=default_home, description="Folder holding all state.")
    pseudonym_key: SecretStr | None = Field(
        default=None, description="Secret for HMAC-SHA256 pseudonymisation of NHS numbers."
    )
    demo: bool = Field(default=False, description="Allow the published demo key (synthetic data only).")
    log_level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_LEVEL)] = Field(
        "INFO", description="Level of $PHM_HOME/logs/phm.log (any case)."
    )
    tracking_uri: str | None = Field(default=None, description="MLflow tracking URI (default: SQLite under home).")
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="Engine for feature builds, daily scoring and audits (Spark: `[spark]` extra)."
    )
    spark_master: str = Field(
        default="local[2]",
        description="Spark master (ignored when a session already runs, as on a Databricks cluster).",
    )
    spark_tables: str | None = Field(
        default=None,
        description="Folder of Parquet tables (one per linked table) that Spark reads; default: a "
        "copy of the warehouse under home, refreshed whenever the warehouse changes.",
    )
    spark_database: str | None = Field(
        default=None,
        description="Catalog database/schema holding the linked tables by name (e.g. `main.phm`); "
        "takes precedence over spark_tables.",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict, description='Extra Spark settings, e.g. {"spark.driver.memory": "8g"}.'
    )
    ledger_key: SecretStr | None = Field(
        default=None,
        description="Secret that signs the hazard and access logs' entries and heads (keep it apart "
        "from PHM_HOME in production); default: a random key in ledger_key_file.",
    )
    ledger_key_file: Path | None = Field(
        default=None,
        description="File holding the ledger key (default: $PHM_HOME/security/ledger.key, 0600, "
        "created on the first append).",
    )
    ledger_fsync: bool = Field(
        False,
        description="Flush every access-log entry to disk before its signed head "
        "moves (the hazard log always is): a power cut then cannot leave "
        "the head ahead of the log, at the cost of a disk flush per "
        "person-level request.",
    )
    load_shrink: ShrinkPolicy = Field(default_factory=ShrinkPolicy, description="Shrink guard of `phm data load`.")
    threads: int | None = Field(
        default=None,
        ge=1,
        description="Threads LightGBM trains and scores with (default: "
        "the cores this process may use; see phm.core.threads).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="Operational database (sessions, contact outcomes, caseloads): a SQLAlchemy URL "
        "such as postgresql+psycopg://user:pass@host/db; default SQLite under home.",
    )
    disclosure: DisclosureSettings = Field(default_factory=DisclosureSettings)
    service: ServiceSettings = Field(default_factory=ServiceSettings)
    outcomes: OutcomeSettings = Field(default_factory=OutcomeSettings)
    policy: dict[str, OperatingPolicy] = Field(
        default_factory=dict,
        description="Operating policy per model (`[policy.<model>]` in phm.toml): "
        "band cut-offs, the share acted on and the random holdout. Part of the configuration a safety officer approves.",
    )

    @field_validator("schema_version")
    @classmethod
    def _schema_version(cls, value: int) -> int:
        return check_schema_version(cls, value)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr | None) -> SecretStr | None:
        """An address the operational database can be kept at (`phm.core.database_url.check`)."""
        if value is not None:
            check_database_url(value.get_secret_value())
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, SettingsFileSource(settings_cls))

    # ---- derived locations (created on first use) -------------------------------------------
    def _dir(self, *parts: str) -> Path:
        return owner_only_dir(self.home.joinpath(*parts))

    @cached_property
    def data_dir(self) -> Path:
        """Where `phm data generate` writes extracts by default."""
        return self._dir("data")

    @cached_property
    def synthetic_dir(self) -> Path:
        return self._dir("data", "synthetic")

    @cached_property
    def warehouse_path(self) -> Path:
        return self._dir("warehouse") / "phm.duckdb"

    @cached_property
    def reports_dir(self) -> Path:
        return self._dir("reports")

    @cached_property
    def logs_dir(self) -> Path:
        return self._dir("logs")

    @cached_property
    def mlflow_tracking_uri(self) -> str:
        return self.tracking_uri or f"sqlite:///{self._dir('mlflow') / 'mlflow.db'}"

    @cached_property
    def mlflow_artifacts_dir(self) -> Path:
        return self._dir("mlflow", "artifacts")

    @cached_property
    def features_dir(self) -> Path:
        return self._dir("features")

    @property
    def ledger_key_path(self) -> Path:
        """Where the ledger key is kept when `ledger_key` is not set."""
        return (
            Path(self.ledger_key_file).expanduser() if self.ledger_key_file else self.home / "security" / "ledger.key"
        )

    @property
    def spark_tables_dir(self) -> Path:
        """Where Spark reads the linked tables: `spark_tables`, else the Parquet copy beside the warehouse."""
        return Path(self.spark_tables).expanduser() if self.spark_tables else self.warehouse_path.parent / "tables"

    def describe(self) -> dict[str, Any]:
        """Settings for display, with secrets masked (keys, passwords in addresses, Spark keys)."""
        return {
            "home": str(self.home),
            "config_file": str(_config_file()),
            "warehouse": str(self.warehouse_path),
            "reports": str(self.reports_dir),
            "logs": str(self.logs_dir),
            "mlflow_tracking_uri": redact.address(self.mlflow_tracking_uri),
            "pseudonym_key": "set" if self.pseudonym_key else "not set",
            "demo": self.demo,
            "log_level": self.log_level,
            "engine": self.engine,
            "ledger_key": "set" if self.ledger_key else f"file {self.ledger_key_path}",
            "ledger_fsync": self.ledger_fsync,
            "load_shrink": self.load_shrink.model_dump(),
            "threads": self.threads or "auto (the cores available)",
            "database": "set (PHM_DATABASE_URL)" if self.database_url else "SQLite under home",
            "disclosure": self.disclosure.model_dump(),
            "service": self.service.model_dump(),
            "outcomes": self.outcomes.model_dump(),
            "policy": {k: v.model_dump(exclude_none=True) for k, v in self.policy.items()},
            **(
                {
                    "spark_master": self.spark_master,
                    "spark_tables": self.spark_tables or str(self.spark_tables_dir),
                    "spark_database": self.spark_database,
                    "spark_conf": redact.table(self.spark_conf),
                }
                if self.engine == "spark"
                else {}
            ),
        }


def owner_only_dir(path: Path) -> Path:
    """`path` created if missing (with any missing parents) as 0700; an existing folder of ours is tightened
    to 0700 too (PHM's own folders hold personal data)."""
    missing = []
    probe = path
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            pass
    try:
        st = path.stat()
        if st.st_uid == os.getuid() and st.st_mode & 0o077:
            os.chmod(path, st.st_mode & 0o700)
    except OSError:
        pass
    return path


def owner_only() -> None:
    """From now on this process creates files 0600 and folders 0700 (umask 077): everything under PHM_HOME is
    personal or security-relevant data. Called by every entry point (the `phm` command, the service)."""
    os.umask(OWNER_ONLY_UMASK)


def get_settings(**overrides: Any) -> Settings:
    """Read settings afresh (environment may have changed, e.g. in tests); files this process creates from now
    on are owner-only. A problem is a `SettingsError` naming the key and where settings come from."""
    owner_only()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(
            f"settings ({_config_file()} and PHM_* environment variables): {explain(exc, Settings)}"
        ) from exc
    except SettingsFileError as exc:
        raise SettingsError(f"settings: {exc}") from None
    except SourceError as exc:  # a PHM_* variable of a table setting (PHM_SPARK_CONF, PHM_SERVICE) that is not JSON
        raise SettingsError(f"settings: {exc} (a table setting in a PHM_* variable is written as JSON)") from None
