"""Server settings: defaults that run with zero configuration, then an optional TOML file, then
the environment (FATHOM_SERVER_<NAME>, and DATABASE_URL for the database), then arguments.
Every value is validated at start (pydantic-settings); a bad one is refused with its name.

    FATHOM_SERVER_CONFIG=/etc/fathom/server.toml   # a flat TOML table (or [server]) of the fields below
    FATHOM_SERVER_PORT=9000
    FATHOM_SERVER_MODELS='{"small": "da2-small"}'  # dicts and lists in the environment are JSON
"""

import os
import tomllib
from pathlib import Path
from typing import Literal, Optional

from pydantic import AliasChoices, Field, NonNegativeInt, PositiveFloat, PositiveInt, ValidationError, model_validator
from pydantic_settings import BaseSettings, InitSettingsSource, SettingsConfigDict

ENV_PREFIX = "FATHOM_SERVER_"


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "fathom-server")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid", populate_by_name=True)

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # Where the SQLite database and the results live; results must be shared storage when API
    # servers and workers run on several machines (or use storage = "database").
    data_dir: str = Field(default_factory=_default_data_dir)
    database_url: str = Field(
        "", validation_alias=AliasChoices("DATABASE_URL", ENV_PREFIX + "DATABASE_URL", "database_url")
    )  # empty: SQLite in data_dir
    storage: Literal["local", "database"] = "local"  # results: files under data_dir, or in the database
    result_retention_hours: PositiveFloat = 720.0  # results are deleted this long after the artwork finished
    public_url: str = ""  # base of result links; empty: the URL the client called
    workers: NonNegativeInt = 1  # inference threads inside the API process (0: external workers only)
    lease_seconds: PositiveFloat = 60.0  # a claimed job is retried or refunded this long after its last heartbeat
    max_attempts: PositiveInt = 2  # claims per job before an expired lease fails it (and refunds it)
    max_job_seconds: PositiveFloat = 600.0  # a job processing longer fails and is refunded (a hung engine)
    poll_seconds: PositiveFloat = 0.5  # how often an idle worker looks for jobs (PostgreSQL also wakes it)
    model_dir: str = ""  # engine.store's model folder; empty: its default
    threads: NonNegativeInt = 0  # onnxruntime threads per job; 0 lets it choose
    # API model name -> engine catalogue id, per model family (useVersion3 picks "v3").
    models: dict[str, str] = {"small": "da2-small"}
    models_v3: dict[str, str] = {}
    default_model: str = "small"
    # Tokens per job: the model's base price (1 when not listed) times the resolution tier's factor.
    prices: dict[str, PositiveInt] = {"small": 1}
    resolution_tiers: dict[str, PositiveInt] = {"512": 1, "1024": 2, "1536": 3, "2048": 4}
    top_up_url: str = ""  # where the add-on sends users to buy tokens
    max_upload_bytes: PositiveInt = 20 * 1024 * 1024
    max_pixels: PositiveInt = 50_000_000  # decompression-bomb guard, checked from the header
    url_allowlist: list[str] = []  # hosts/networks allowed despite being private
    rate_per_second: float = Field(10.0, ge=0)  # submissions per API key; 0 disables rate limiting
    rate_burst: NonNegativeInt = 50
    fetch_timeout_seconds: PositiveFloat = 10.0  # one imageUrl download, connect to last byte, however slow
    fetch_concurrency: PositiveInt = 16  # imageUrl downloads at once in this process (beyond: 503)
    fetch_per_key: PositiveInt = 4  # ... and per API key (beyond: 429)
    max_wait_seconds: float = Field(60.0, ge=0)  # cap of `Prefer: wait=N`
    idempotency_hours: PositiveFloat = 24.0  # how long an Idempotency-Key is remembered (as Stripe does)
    webhook_attempts: PositiveInt = 6  # attempts per event before it is "failed" (admin: redeliver)
    webhook_backoff_seconds: PositiveFloat = 5.0  # first retry delay; doubles per attempt, capped at 5 minutes
    webhook_timeout_seconds: PositiveFloat = 15.0
    webhook_workers: PositiveInt = 2  # delivery threads per process
    auto_migrate: bool = True  # apply missing migrations at start (set false with several machines)
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"

    @model_validator(mode="after")
    def _consistent(self):
        if self.rate_per_second > 0 and self.rate_burst < 1:
            raise ValueError("rate_burst must be at least 1 when rate_per_second is above 0")
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of models ({', '.join(self.models)})")
        for limit in self.resolution_tiers:
            if not limit.isdigit():
                raise ValueError(f"resolution_tiers: {limit!r} is not a resolution (a whole number of pixels)")
        return self

    @property
    def database(self) -> str:
        return self.database_url or "sqlite:///" + str(Path(self.data_dir) / "fathom.db")

    @property
    def results_dir(self) -> Path:
        return Path(self.data_dir) / "results"


def _read_toml(path) -> dict:
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    data = data.get("server", data)  # accept a [server] table or a flat file
    unknown = set(data) - set(Settings.model_fields)
    if unknown:
        raise ValueError(
            f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(Settings.model_fields))}."
        )
    return data


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        name = str(error["loc"][0]) if error["loc"] else ""
        if name in ("DATABASE_URL", ENV_PREFIX + "DATABASE_URL"):
            name = "database_url"
        where = f"{name} ({ENV_PREFIX}{name.upper()})={error.get('input')!r}: " if name else ""
        parts.append(where + error["msg"].removeprefix("Value error, "))
    return "Invalid server setting: " + "; ".join(parts)


def load_settings(config_file: Optional[str] = None, **overrides) -> Settings:
    """Defaults < TOML file (argument or FATHOM_SERVER_CONFIG) < environment < keyword overrides.
    Raises ValueError naming each bad setting."""
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    toml = _read_toml(path) if path else {}

    class Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
        ):
            return init_settings, env_settings, InitSettingsSource(settings_cls, init_kwargs=toml)

    try:
        return Loaded(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        raise ValueError(_describe(exc)) from None


def settings_or_exit(config_file: Optional[str] = None, **overrides) -> Settings:
    """load_settings for the command lines: a bad setting ends the program with its name, no traceback."""
    try:
        return load_settings(config_file, **overrides)
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None
