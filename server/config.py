"""Server settings: defaults that run with zero configuration, then an optional TOML file, then
the environment (FATHOM_SERVER_<NAME>, and DATABASE_URL for the database).

    FATHOM_SERVER_CONFIG=/etc/fathom/server.toml   # a flat TOML table of the fields below
    FATHOM_SERVER_PORT=9000
    FATHOM_SERVER_MODELS='{"small": "da2-small"}'  # dicts and lists in the environment are JSON
"""
import json
import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Optional

ENV_PREFIX = "FATHOM_SERVER_"


def _default_data_dir() -> str:
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "fathom-server")


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    # Where the SQLite database and the results live; results must be shared storage when API
    # servers and workers run on several machines.
    data_dir: str = field(default_factory=_default_data_dir)
    database_url: str = ""             # empty: sqlite:///<data_dir>/fathom.db
    storage: str = "local"             # results: "local" (files under data_dir) or "database" (no shared disk)
    result_retention_hours: float = 720.0  # results are deleted this long after the artwork finished
    public_url: str = ""               # base of result links; empty: the URL the client called
    workers: int = 1                   # inference threads inside the API process (0: external workers only)
    lease_seconds: float = 60.0        # a claimed job is retried or refunded this long after its last heartbeat
    max_attempts: int = 2              # claims per job before an expired lease fails it (and refunds it)
    max_job_seconds: float = 600.0     # a job processing longer fails and is refunded (a hung engine)
    poll_seconds: float = 0.5          # how often an idle worker looks for jobs
    model_dir: str = ""                # engine.store's model folder; empty: its default
    threads: int = 0                   # onnxruntime threads per job; 0 lets it choose
    # API model name -> engine catalogue id, per model family (useVersion3 picks "v3").
    models: dict = field(default_factory=lambda: {"small": "da2-small"})
    models_v3: dict = field(default_factory=dict)
    default_model: str = "small"
    # Tokens per job: the model's base price times the resolution tier's factor.
    prices: dict = field(default_factory=lambda: {"small": 1})
    resolution_tiers: dict = field(default_factory=lambda: {"512": 1, "1024": 2, "1536": 3, "2048": 4})
    top_up_url: str = ""               # where the add-on sends users to buy tokens
    max_upload_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 50_000_000       # decompression-bomb guard, checked from the header
    url_allowlist: list = field(default_factory=list)  # hosts/networks allowed despite being private
    rate_per_second: float = 10.0      # submissions per API key; 0 disables rate limiting
    rate_burst: int = 50
    fetch_timeout_seconds: float = 10.0  # one imageUrl download, connect to last byte, however slow
    fetch_concurrency: int = 16        # imageUrl downloads at once in this process (beyond: 503)
    fetch_per_key: int = 4             # ... and per API key (beyond: 429)
    max_wait_seconds: float = 60.0     # cap of `Prefer: wait=N`
    idempotency_hours: float = 24.0    # how long an Idempotency-Key is remembered (as Stripe does)
    webhook_attempts: int = 6          # attempts per event before it is "failed" (admin: redeliver)
    webhook_backoff_seconds: float = 5.0  # first retry delay; doubles per attempt, capped at 5 minutes
    webhook_timeout_seconds: float = 15.0
    webhook_workers: int = 2           # delivery threads per process
    auto_migrate: bool = True          # apply missing migrations at start (set false with several machines)
    log_level: str = "info"

    @property
    def database(self) -> str:
        return self.database_url or "sqlite:///" + str(Path(self.data_dir) / "fathom.db")

    @property
    def results_dir(self) -> Path:
        return Path(self.data_dir) / "results"


def _coerce(name: str, kind, raw):
    if not isinstance(raw, str):
        return raw
    try:
        if kind in (dict, list):
            value = json.loads(raw)
            if not isinstance(value, kind):
                raise ValueError(f"expected a JSON {'object' if kind is dict else 'array'}")
            return value
        if kind is bool:
            if raw.strip().lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError("expected true or false")
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return kind(raw) if kind in (int, float) else raw
    except ValueError as exc:
        raise ValueError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind.__name__}: {exc}") from None


def load_settings(config_file: Optional[str] = None, **overrides) -> Settings:
    """Defaults < TOML file (argument or FATHOM_SERVER_CONFIG) < environment < keyword overrides."""
    known = {f.name: f.type for f in fields(Settings)}
    values = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        data = data.get("server", data)  # accept a [server] table or a flat file
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}.")
        values.update(data)
    if os.environ.get("DATABASE_URL"):
        values["database_url"] = os.environ["DATABASE_URL"]
    for name, kind in known.items():
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            values[name] = _coerce(name, kind, raw)
    values.update({k: v for k, v in overrides.items() if v is not None})
    return replace(Settings(), **values)
