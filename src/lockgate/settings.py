"""Settings, built once at the entry point and passed down; never read from globals.

Precedence: explicit arguments (CLI flags), then environment variables, then the project's
`lockgate.yaml`, then defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from lockgate.errors import ConfigError
from lockgate.security import check_role

STATE_DIR = ".lockgate"
TASKS_DIR = "tasks"
SETTINGS_FILE = "lockgate.yaml"


class Secret:
    """A string that never shows itself in repr, str, logs or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True)
class Price:
    """USD per 1,000 tokens, and per call."""

    input_per_1k: float = 0.0
    output_per_1k: float = 0.0
    per_call: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            self.per_call
            + input_tokens / 1000 * self.input_per_1k
            + output_tokens / 1000 * self.output_per_1k
        )


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    database_url: str
    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: Secret = field(default_factory=lambda: Secret(""))
    prices: Mapping[str, Price] = field(default_factory=dict)
    batch_size: int = 500
    """Records decided and committed together by `lockgate run`."""
    concurrency: int = 16
    """Concurrent calls to a remote provider within one batch."""
    otlp_endpoint: str | None = None
    """Base URL of an OTLP/HTTP collector (spans go to `/v1/traces`); None: tracing off."""
    max_body_bytes: int = 1_000_000
    """Largest HTTP request body the server accepts; larger ones get a 413."""
    request_timeout_seconds: float = 30.0
    """Longest time one HTTP request may take before the server answers 504."""
    batch_max_items: int = 100
    """Most inputs in one `POST /v1/tasks/{task}/decisions:batch` request."""
    group_commit_max_items: int = 64
    """Most concurrent decision requests `lockgate serve` decides and commits as one group."""
    group_commit_wait_ms: float = 2.0
    """Longest a decision request waits for company while another group is in flight (a lone
    request never waits)."""
    api_key_cache_seconds: float = 5.0
    """How long `lockgate serve` trusts an API key it checked: a revoked key keeps working for
    at most this long on each replica that used it just before (0: check every request)."""
    release_refresh_seconds: float = 1.0
    """How long `lockgate serve` keeps deciding with the live and canary releases it read
    before it reads the task's pointers again: a promote, rollback or canary change reaches
    every replica within this time (releases themselves never change)."""
    metrics_public: bool = False
    """Serve `/metrics` without an API key (for a Prometheus on a private network)."""
    shutdown_timeout_seconds: float = 30.0
    """On SIGTERM, how long `lockgate serve` waits for in-flight requests to finish."""
    review_lease_seconds: float = 900.0
    """How long a reviewer's claim on a review item lasts; then the item returns to the queue."""
    review_escalation_interval_seconds: float = 60.0
    """How often `lockgate serve` escalates review items pending longer than their task's SLA."""
    spot_check_interval_seconds: float = 60.0
    """How often `lockgate serve` queues spot checks of automated decisions (0: never)."""
    drift_window_hours: float = 24.0
    """Drift compares the last this many hours of decisions with the release's profile..."""
    drift_window_decisions: int = 1000
    """...or the last this many decisions, whichever is fewer."""
    session_secret: Secret = field(default_factory=lambda: Secret(""))
    """Signs the review pages' session cookies; empty: a random secret per process."""
    session_max_age_seconds: int = 8 * 3600
    """How long a sign-in to the review pages lasts."""
    auth_failure_limit: int = 20
    """Failed API-key checks and sign-ins allowed per client address, and per key prefix, in
    one `auth_failure_window_seconds`; past it they get a 429 (counted per process)."""
    auth_failure_window_seconds: float = 60.0
    """The window in which failed API-key checks and sign-ins are counted."""
    audit_anchor_file: Path | None = None
    """Where the audit log's head (id, hash, time) is written after every audited change, for
    `lockgate audit verify --anchor FILE`; put it outside the database's disk. None: not
    written (`lockgate audit anchor --out FILE` writes one on demand)."""
    retention_interval_seconds: float = 3600.0
    """How often `lockgate serve` runs the retention sweep of tasks with `retention:` (one
    replica at a time; 0: never, run `lockgate retention run` from cron instead)."""
    retention_batch_size: int = 500
    """Decisions blanked per transaction by the retention sweep."""
    api_docs: bool = False
    """Serve `/docs`, an API reference page without scripts, to callers with an API key."""
    review_pii_roles: tuple[str, ...] = ("admin",)
    """Roles that see `pii: true` input fields in clear on the review pages."""
    delivery_in_process: bool = True
    """Run the delivery worker inside `lockgate serve`; off when `lockgate worker` runs apart."""
    delivery_poll_seconds: float = 1.0
    """How often an idle delivery worker looks for due outbox rows."""
    delivery_lease_seconds: float = 120.0
    """How long a worker's claim on a batch lasts; a crashed worker's rows return after it."""
    delivery_batch_size: int = 100
    """Outbox rows one worker claims at a time."""
    delivery_concurrency: int = 16
    """Deliveries one worker sends at the same time."""
    delivery_max_tries: int = 8
    """Tries before a row is dead-lettered, for sinks without their own `max_tries`."""
    delivery_backoff_base_seconds: float = 2.0
    """Delay before the first retry; doubles on each retry, with jitter."""
    delivery_backoff_cap_seconds: float = 600.0
    """Longest delay between two tries of one delivery."""
    history_rollup_seconds: float = 10.0
    """How often `lockgate serve` rolls new decisions and verdicts up into history."""
    history_hours_after_days: float = 7.0
    """History older than this many days is kept per hour instead of per minute."""
    history_days_after_days: float = 90.0
    """History older than this many days is kept per day."""
    alert_interval_seconds: float = 30.0
    """How often `lockgate serve` evaluates the alert rules."""
    alerts: tuple[Mapping[str, Any], ...] = ()
    """Alert rules for every task (`alerts:` in `lockgate.yaml`), checked by `lockgate.watch`."""
    alert_channels: Mapping[str, Any] = field(default_factory=dict)
    """Where alert notices go (`alert_channels:` in `lockgate.yaml`), by channel name."""
    budget: Mapping[str, Any] | None = None
    """Limits over all tasks together, shaped as a task's `budget:` (checked by
    `lockgate.costs.budgets.overall_budget`); None: no overall limits."""
    budget_hold_seconds: float = 600.0
    """Lifetime of a budget hold (a paid call's reserved worst-case cost): one left behind
    by a crash is booked at its worst case after this long."""
    budget_max_tokens: int = 4096
    """Output tokens assumed for a paid model without `max_tokens` when reserving its
    worst-case cost."""

    @property
    def state_dir(self) -> Path:
        return self.project_dir / STATE_DIR

    @property
    def artifact_dir(self) -> Path:
        return self.state_dir / "artifacts"

    @property
    def tasks_dir(self) -> Path:
        return self.project_dir / TASKS_DIR

    def price(self, model: str) -> Price:
        return self.prices.get(model, Price())

    def with_changes(self, **changes: Any) -> Settings:
        return replace(self, **changes)


def default_database_url(project_dir: Path) -> str:
    return f"sqlite:///{(project_dir / STATE_DIR / 'lockgate.db').resolve()}"


def load_settings(
    project_dir: str | Path | None = None,
    *,
    database_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings for the project in `project_dir` (default: the current folder)."""
    env = os.environ if environ is None else environ
    project = Path(project_dir or ".").resolve()
    file_values = _read_settings_file(project / SETTINGS_FILE)
    prices = {
        name: _price(name, value) for name, value in (file_values.get("prices") or {}).items()
    }
    url = (
        database_url
        or env.get("LOCKGATE_DATABASE_URL")
        or file_values.get("database_url")
        or default_database_url(project)
    )
    return Settings(
        project_dir=project,
        database_url=str(url),
        openai_base_url=str(
            env.get("OPENAI_BASE_URL")
            or file_values.get("openai_base_url")
            or "https://api.openai.com/v1"
        ).rstrip("/"),
        openai_api_key=Secret(env.get("OPENAI_API_KEY", "")),
        prices=prices,
        batch_size=int(file_values.get("batch_size", 500)),
        concurrency=int(file_values.get("concurrency", 16)),
        otlp_endpoint=str(
            env.get("LOCKGATE_OTLP_ENDPOINT") or file_values.get("otlp_endpoint") or ""
        )
        or None,
        max_body_bytes=int(file_values.get("max_body_bytes", 1_000_000)),
        request_timeout_seconds=float(file_values.get("request_timeout_seconds", 30.0)),
        batch_max_items=int(file_values.get("batch_max_items", 100)),
        group_commit_max_items=int(file_values.get("group_commit_max_items", 64)),
        group_commit_wait_ms=float(file_values.get("group_commit_wait_ms", 2.0)),
        api_key_cache_seconds=float(file_values.get("api_key_cache_seconds", 5.0)),
        release_refresh_seconds=float(file_values.get("release_refresh_seconds", 1.0)),
        metrics_public=bool(file_values.get("metrics_public", False)),
        shutdown_timeout_seconds=float(file_values.get("shutdown_timeout_seconds", 30.0)),
        review_lease_seconds=float(file_values.get("review_lease_seconds", 900.0)),
        review_escalation_interval_seconds=float(
            file_values.get("review_escalation_interval_seconds", 60.0)
        ),
        spot_check_interval_seconds=float(file_values.get("spot_check_interval_seconds", 60.0)),
        drift_window_hours=float(file_values.get("drift_window_hours", 24.0)),
        drift_window_decisions=int(file_values.get("drift_window_decisions", 1000)),
        delivery_in_process=bool(file_values.get("delivery_in_process", True)),
        delivery_poll_seconds=float(file_values.get("delivery_poll_seconds", 1.0)),
        delivery_lease_seconds=float(file_values.get("delivery_lease_seconds", 120.0)),
        delivery_batch_size=int(file_values.get("delivery_batch_size", 100)),
        delivery_concurrency=int(file_values.get("delivery_concurrency", 16)),
        delivery_max_tries=int(file_values.get("delivery_max_tries", 8)),
        delivery_backoff_base_seconds=float(file_values.get("delivery_backoff_base_seconds", 2.0)),
        delivery_backoff_cap_seconds=float(file_values.get("delivery_backoff_cap_seconds", 600.0)),
        history_rollup_seconds=float(file_values.get("history_rollup_seconds", 10.0)),
        history_hours_after_days=float(file_values.get("history_hours_after_days", 7.0)),
        history_days_after_days=float(file_values.get("history_days_after_days", 90.0)),
        alert_interval_seconds=float(file_values.get("alert_interval_seconds", 30.0)),
        alerts=_alert_rules(file_values.get("alerts")),
        alert_channels=_alert_channels(file_values.get("alert_channels")),
        budget=_mapping("budget", file_values.get("budget")),
        budget_hold_seconds=float(file_values.get("budget_hold_seconds", 600.0)),
        budget_max_tokens=int(file_values.get("budget_max_tokens", 4096)),
        session_secret=Secret(env.get("LOCKGATE_SESSION_SECRET", "")),
        session_max_age_seconds=int(file_values.get("session_max_age_seconds", 8 * 3600)),
        auth_failure_limit=int(file_values.get("auth_failure_limit", 20)),
        auth_failure_window_seconds=float(file_values.get("auth_failure_window_seconds", 60.0)),
        api_docs=bool(file_values.get("api_docs", False)),
        audit_anchor_file=_anchor_file(project, env, file_values),
        retention_interval_seconds=float(file_values.get("retention_interval_seconds", 3600.0)),
        retention_batch_size=int(file_values.get("retention_batch_size", 500)),
        review_pii_roles=_roles(file_values.get("review_pii_roles", ["admin"])),
    )


def _mapping(key: str, value: Any) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(f"{SETTINGS_FILE}: {key}: expected a mapping")
    return value


def _anchor_file(project: Path, env: Mapping[str, str], values: Mapping[str, Any]) -> Path | None:
    """The audit anchor file: LOCKGATE_AUDIT_ANCHOR_FILE, else `audit_anchor_file` in the
    settings file (relative to the project)."""
    raw = env.get("LOCKGATE_AUDIT_ANCHOR_FILE") or values.get("audit_anchor_file")
    return (project / str(raw)).resolve() if raw else None


def _alert_rules(value: Any) -> tuple[Mapping[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(
            f"{SETTINGS_FILE}: alerts: expected a list of rules",
            hint="e.g. alerts: [{condition: failure_rate, threshold: 0.1, window: 15m}]",
        )
    return tuple(value)


def _alert_channels(value: Any) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(
            f"{SETTINGS_FILE}: alert_channels: expected a mapping of channel names to channels",
            hint="e.g. alert_channels: {ops: {type: webhook, url: ..., secret_env: HOOK_SECRET}}",
        )
    return value


def _roles(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{SETTINGS_FILE}: review_pii_roles: expected a list of roles")
    return tuple(check_role(str(role)) for role in value)


def _read_settings_file(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path.name}: must be a mapping of setting names to values")
    if "openai_api_key" in data:
        raise ConfigError(
            f"{path.name}: openai_api_key must not be stored in a file",
            hint="set the OPENAI_API_KEY environment variable instead",
        )
    if "session_secret" in data:
        raise ConfigError(
            f"{path.name}: session_secret must not be stored in a file",
            hint="set the LOCKGATE_SESSION_SECRET environment variable instead",
        )
    return data


def _price(model: str, value: Any) -> Price:
    if not isinstance(value, dict):
        raise ConfigError(
            f"{SETTINGS_FILE}: prices.{model}: expected a mapping like "
            "{input_per_1k: 0.00015, output_per_1k: 0.0006}"
        )
    try:
        return Price(**{k: float(v) for k, v in value.items()})
    except (TypeError, ValueError):
        raise ConfigError(
            f"{SETTINGS_FILE}: prices.{model}: known keys are input_per_1k, output_per_1k, "
            "per_call, each a number"
        ) from None
