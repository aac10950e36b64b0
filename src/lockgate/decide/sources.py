"""The `sources:` section of a task file: where records come from and how they map to the input.

Only the declaration lives here (it is part of the task file and is checked when the file is
loaded); reading, mapping, de-duplication and quarantine live in `lockgate.intake`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SOURCE_KINDS = ("folder", "webhook", "imap", "sql", "api", "run")
POLLED_KINDS = ("folder", "imap", "sql")
"""Kinds that `lockgate intake run` and `serve` read; the others are pushed to or run."""
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def duration_seconds(text: str) -> float:
    """ "7d", "12h", "30m", "45s" in seconds; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration; write e.g. 45s, 30m, 12h or 7d")
    return float(match.group(1)) * _UNITS[match.group(2)]


class FieldMap(_Strict):
    """How one input field is found in a source record and coerced."""

    from_: tuple[str, ...] = Field(default=(), alias="from")
    """Source field names to try in order; default: the input field's own name."""
    aliases: tuple[str, ...] = ()
    """More names for the same field (a renamed column keeps working)."""
    type: Literal["string", "number", "integer", "boolean", "date", "datetime"] | None = None
    """Coerce to this type; default: the input field's type."""
    format: str | None = None
    """For dates: a strptime format, e.g. "%d.%m.%Y"; the value becomes an ISO date."""
    decimal: Literal[".", ","] = "."
    """The decimal mark of numbers written as text."""
    default: Any = None
    """The value when the source has none (empty counts as none)."""
    trim: bool = True

    @field_validator("from_", "aliases", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    def names(self, field_name: str) -> tuple[str, ...]:
        names = self.from_ + self.aliases
        return names or (field_name,)


class DedupeSpec(_Strict):
    by: Literal["key", "content"] = "key"
    window: str = "7d"
    """How long a content hash is remembered (`by: content`)."""

    @field_validator("window")
    @classmethod
    def _duration(cls, value: str) -> str:
        duration_seconds(value)
        return value

    @property
    def window_seconds(self) -> float:
        return duration_seconds(self.window)


class SourceBase(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    kind: str
    map: Mapping[str, FieldMap] = Field(default_factory=dict)
    key: str | None = None
    """The idempotency-key template, e.g. "{file}:{row}" or "{ticket_id}"."""
    on_drift: Literal["accept", "quarantine", "stop"] = "accept"
    dedupe: DedupeSpec = Field(default_factory=DedupeSpec)
    batch_size: int = Field(default=500, ge=1, le=10_000)
    retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    """First wait after a failed read; doubles on each failure up to `retry_max_s`."""
    retry_max_s: float = Field(default=300.0, gt=0, le=86_400)
    report_after: int = Field(default=5, ge=1, le=10_000)
    """Consecutive failed reads after which the source is reported as failing."""
    poll_s: float = Field(default=10.0, ge=0.05, le=86_400)
    """How often `lockgate serve` reads the source (`intake run` has `--interval`)."""

    @field_validator("map", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `text: body` and `text: [body, message]` are short for `text: {from: ...}`.
        if not isinstance(value, Mapping):
            return value
        return {
            k: {"from": v} if isinstance(v, str | list | tuple) else v for k, v in value.items()
        }

    @field_validator("key")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None and not re.search(r"\{[A-Za-z_][A-Za-z0-9_]*\}", value):
            raise ValueError('must name at least one field in braces, e.g. "{file}:{row}"')
        return value

    def default_key(self) -> str:
        raise NotImplementedError

    def key_prefix(self) -> str:
        """What every idempotency key of the source starts with (its name, so the keys of
        two sources never meet)."""
        return f"{self.name}:"


def _relative(path: str) -> str:
    if Path(path).is_absolute() or ".." in Path(path).parts:
        raise ValueError("must be a folder inside the project, e.g. inbox/")
    return path


class FolderSource(SourceBase):
    """Files dropped into a folder: CSV, JSON Lines, JSON (array) and Excel (.xlsx)."""

    kind: Literal["folder"]
    path: str
    patterns: tuple[str, ...] = ("*.csv", "*.jsonl", "*.ndjson", "*.json", "*.xlsx")
    ready: Literal["stable", "marker"] = "stable"
    """When a file is complete: its size and mtime unchanged for `stable_s` seconds, or a
    `NAME.done` marker beside it."""
    stable_s: float = Field(default=2.0, ge=0, le=3600)
    encoding: str | None = None
    """Force a text encoding; default: detected (UTF-8 with or without BOM, UTF-16, Latin-1)."""

    @field_validator("path")
    @classmethod
    def _inside_project(cls, value: str) -> str:
        return _relative(value)

    def default_key(self) -> str:
        return "{file}:{row}"


class WebhookSource(SourceBase):
    """Records pushed to `POST /v1/intake/{name}`, signed with HMAC-SHA256."""

    kind: Literal["webhook"]
    secret_env: str
    """The environment variable holding the shared signing secret."""
    tolerance_s: float = Field(default=300.0, gt=0, le=86_400)
    """How far a request's timestamp may be from now (the replay window)."""
    max_in_flight: int = Field(default=8, ge=1, le=1000)
    """Pushes handled at once; more get a 503 with Retry-After (a bounded buffer)."""

    @field_validator("secret_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not the secret")
        return value

    def default_key(self) -> str:
        return "{delivery}"


class ImapSource(SourceBase):
    """Messages in a mailbox folder; subject, sender, body text and attachment names."""

    kind: Literal["imap"]
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    tls: bool = True
    user: str
    password_env: str
    folder: str = "INBOX"
    after: Literal["flag", "move"] = "flag"
    move_to: str = "Processed"
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("password_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not the password")
        return value

    def default_key(self) -> str:
        return "{uidvalidity}:{uid}"


class SqlSource(SourceBase):
    """Rows of a table (or query) in PostgreSQL or SQLite, read in order of a cursor."""

    kind: Literal["sql"]
    url_env: str
    """The environment variable holding the database URL (it may hold a password)."""
    table: str | None = None
    query: str | None = None
    cursor: tuple[str, ...] = ("id",)
    """Increasing columns, e.g. [updated_at, id] (the last one breaks ties)."""
    timeout_s: float = Field(default=30.0, gt=0, le=600)

    @field_validator("cursor", mode="before")
    @classmethod
    def _columns(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("url_env")
    @classmethod
    def _env(cls, value: str) -> str:
        if not _ENV_NAME.match(value):
            raise ValueError("must be the name of an environment variable, not the URL")
        return value

    @model_validator(mode="after")
    def _table_or_query(self) -> SqlSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("name exactly one of `table` or `query`")
        if self.table is not None and not re.match(r"^[A-Za-z_][\w.]*$", self.table):
            raise ValueError("table must be a plain name, e.g. tickets or crm.tickets")
        if not self.cursor:
            raise ValueError("cursor must name at least one column")
        bad = [c for c in self.cursor if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", c)]
        if bad:
            raise ValueError(f"cursor columns must be plain names, not {', '.join(bad)}")
        return self

    def default_key(self) -> str:
        return ":".join(f"{{{c}}}" for c in self.cursor)


class _BuiltIn(SourceBase):
    """A way in that exists without a `sources:` entry; declaring it adds mapping, content
    de-duplication and quarantine to it. Its keys are what they are without the entry."""

    @field_validator("key")
    @classmethod
    def _no_key(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError(
                "this source's keys are given (the request's Idempotency-Key, or the run id and "
                "record id of `lockgate run`): leave `key:` out"
            )
        return value


class ApiSource(_BuiltIn):
    """`POST /v1/tasks/TASK/decisions` (and `:batch`): each request's input is mapped, held in
    quarantine when it cannot be, and de-duplicated by content when `dedupe:` says so."""

    kind: Literal["api"]

    def default_key(self) -> str:
        return "{idempotency_key}"

    def key_prefix(self) -> str:
        return ""  # the caller's Idempotency-Key, unchanged: a resend finds its decision


class RunSource(_BuiltIn):
    """`lockgate run TASK FILE`: the file's records are mapped, held in quarantine when they
    cannot be, and de-duplicated by content when `dedupe:` says so."""

    kind: Literal["run"]

    def default_key(self) -> str:
        return "{run}:{id}"

    def key_prefix(self) -> str:
        return "run:"  # run:RUN:ID, as `lockgate run` keys records without a `run` source


SourceSpec = Annotated[
    FolderSource | WebhookSource | ImapSource | SqlSource | ApiSource | RunSource,
    Field(discriminator="kind"),
]


def check_source_kinds(entries: Any) -> Any:
    """A clear message for a missing or unknown `kind:` (before pydantic's union error)."""
    for i, entry in enumerate(entries if isinstance(entries, list | tuple) else ()):
        kind = entry.get("kind") if isinstance(entry, Mapping) else None
        if kind not in SOURCE_KINDS:
            what = "has no `kind:` key" if kind is None else "names an unknown kind"
            raise ValueError(f"entry {i} {what}; use `kind:` {', '.join(SOURCE_KINDS)}")
    return entries


def source_problems(sources: tuple[Any, ...], inputs: Mapping[str, Any], where: str) -> list[str]:
    """Cross-checks against the task: unique names, map targets that are input fields."""
    problems: list[str] = []
    seen: set[str] = set()
    for i, source in enumerate(sources):
        if source.name in seen:
            problems.append(f"{where}: sources.{i}.name: {source.name!r} is used twice")
        seen.add(source.name)
        if source.kind in ("api", "run") and any(s.kind == source.kind for s in sources[:i]):
            problems.append(f"{where}: sources.{i}.kind: only one source of kind {source.kind}")
        for target in source.map:
            if target not in inputs:
                problems.append(
                    f"{where}: sources.{i}.map.{target}: not an input field "
                    f"(input fields: {', '.join(inputs)})"
                )
    return problems
