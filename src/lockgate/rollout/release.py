"""Releases: immutable, numbered, content-hashed versions of how a task decides."""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from lockgate.decide.decision import canonical_json
from lockgate.decide.task import TaskSpec, dump_yaml, parse_task
from lockgate.errors import ConfigError, NotFound

Stage = Literal["draft", "shadow", "canary", "live", "retired"]
_REF = re.compile(r"^(?P<task>[a-z][a-z0-9_-]*)(?:@(?P<number>\d+|live|previous))?$")


@dataclass(frozen=True)
class Release:
    task: str
    number: int
    content_hash: str
    spec: Mapping[str, Any]
    artifacts: Mapping[str, str]
    stage: Stage
    created_at: datetime
    created_by: str = "cli"
    canary_percent: float | None = None
    """Share of traffic (0-50 %) a `canary` release decides; None for other stages."""

    @property
    def ref(self) -> str:
        return f"{self.task}@{self.number}"

    def task_spec(self) -> TaskSpec:
        return parse_task(dict(self.spec), f"release {self.ref}")

    def snapshot_yaml(self) -> str:
        return dump_yaml({"spec": dict(self.spec), "artifacts": dict(self.artifacts)})


def content_hash(spec: Mapping[str, Any], artifacts: Mapping[str, str]) -> str:
    """sha256 over the canonical task spec and the hashes of the artifacts it pins."""
    payload = canonical_json({"spec": spec, "artifacts": artifacts})
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ReleaseRef:
    task: str
    selector: int | Literal["live", "previous"] | None

    @classmethod
    def parse(cls, text: str) -> ReleaseRef:
        match = _REF.match(text.strip())
        if not match:
            raise ConfigError(
                f"{text!r} is not a release reference",
                hint="write TASK@NUMBER, e.g. routing@3, or TASK@live",
            )
        number = match["number"]
        selector: int | Literal["live", "previous"] | None
        if number is None:
            selector = None
        elif number.isdigit():
            selector = int(number)
        else:
            selector = "live" if number == "live" else "previous"
        return cls(match["task"], selector)

    @classmethod
    def of_task(cls, task: str, text: str) -> ReleaseRef:
        """A reference to a release of `task`: `N`, `live`, `TASK@N` or `TASK@live`."""
        parsed = cls.parse(text if "@" in text else f"{task}@{text}")
        if parsed.task != task or parsed.selector in (None, "previous"):
            raise ConfigError(f"--release {text!r}: name a release of {task}, e.g. {task}@2 or 2")
        return parsed

    @classmethod
    def number_of(cls, task: str, text: str) -> int:
        """The release number `text` names for `task`: `N` or `TASK@N`."""
        parsed = cls.of_task(task, text)
        if not isinstance(parsed.selector, int):
            raise ConfigError(f"--release {text!r}: name a release of {task}, e.g. {task}@2 or 2")
        return parsed.selector


class ReleaseReader(Protocol):
    def get(self, task: str, number: int) -> Release: ...

    def live(self, task: str) -> Release | None: ...


def resolve(releases: ReleaseReader, ref: ReleaseRef) -> Release:
    """The release `ref` names: its number, or the live release (`TASK@live` or plain `TASK`).
    `TASK@previous` names no single stored release and is refused."""
    if isinstance(ref.selector, int):
        return releases.get(ref.task, ref.selector)
    if ref.selector == "previous":
        raise ConfigError(f"{ref.task}@previous: name a release number or live, e.g. {ref.task}@2")
    live = releases.live(ref.task)
    if live is None:
        raise NotFound(
            f"task {ref.task!r} has no live release",
            hint=f"`lockgate release list {ref.task}` shows its releases",
        )
    return live


def policy_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The policy keys whose value differs between two release specs: {key: {from, to}}."""
    before = dict(old.get("policy") or {})
    after = dict(new.get("policy") or {})
    return {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def diff_releases(a: Release, b: Release) -> str:
    """A unified diff of two releases' snapshots (spec and pinned artifacts)."""
    return "".join(
        difflib.unified_diff(
            a.snapshot_yaml().splitlines(keepends=True),
            b.snapshot_yaml().splitlines(keepends=True),
            fromfile=a.ref,
            tofile=b.ref,
        )
    )
