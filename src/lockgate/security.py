"""API keys and roles: key format, hashing, constant-time checks and the permission table.

A key is `lg_` followed by 32 random bytes (urlsafe base64). It is shown once and stored only
as its sha256. A plain, unsalted hash is enough here: the key has 256 bits of entropy, so it
cannot be guessed or found in a dictionary, and a fast hash lets every request be checked
without a slow KDF. (Salted slow hashes such as scrypt exist for low-entropy passwords.)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

from lockgate.errors import ConfigError, Forbidden

Role = Literal["admin", "operator", "reviewer", "submitter", "viewer", "feedback"]
ROLES: tuple[Role, ...] = get_args(Role)
Action = Literal["decide", "read_decisions", "read_tasks", "manage_releases", "review", "feedback"]

KEY_PREFIX = "lg_"

#: Who may do what: the one place roles are defined. A `submitter` reads only the decisions it
#: submitted itself (enforced where decisions are read, from `Principal.own_decisions_only`).
PERMISSIONS: dict[Role, frozenset[Action]] = {
    "admin": frozenset(
        {"decide", "read_decisions", "read_tasks", "manage_releases", "review", "feedback"}
    ),
    "operator": frozenset({"read_decisions", "read_tasks", "manage_releases"}),
    "reviewer": frozenset({"read_decisions", "read_tasks", "review"}),
    "submitter": frozenset({"decide", "read_decisions", "read_tasks", "feedback"}),
    "viewer": frozenset({"read_decisions", "read_tasks"}),
    # A downstream system telling whether outcomes were right (issue 13). A submitter gives
    # feedback too, on the decisions it submitted itself only.
    "feedback": frozenset({"feedback"}),
}


def least_role(action: Action) -> Role:
    """The role with the fewest permissions that still allows `action` (for hints)."""
    return min((r for r in ROLES if action in PERMISSIONS[r]), key=lambda r: len(PERMISSIONS[r]))


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_role(role: str) -> Role:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}", hint=f"roles: {', '.join(ROLES)}")
    return role


@dataclass(frozen=True)
class ApiKey:
    """A stored key: never its secret, only the hash."""

    id: str
    name: str
    key_hash: str
    role: Role
    tasks: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def matches(self, key: str) -> bool:
        """Constant-time check that `key` is this key."""
        return hmac.compare_digest(hash_key(key), self.key_hash)

    def summary(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "tasks": list(self.tasks) or "all",
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


@dataclass(frozen=True)
class Principal:
    """Who makes a request: the key's id and name, its role and its task scope."""

    key_id: str
    name: str
    role: Role
    tasks: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key.id, key.name, key.role, key.tasks)

    @property
    def own_decisions_only(self) -> bool:
        return self.role == "submitter"

    def can(self, action: Action) -> bool:
        return action in PERMISSIONS[self.role]

    def may_see_task(self, task: str) -> bool:
        return not self.tasks or task in self.tasks

    def require(self, action: Action, task: str | None = None) -> None:
        if not self.can(action):
            raise Forbidden(
                f"the {self.role} role may not {action.replace('_', ' ')}",
                hint="ask an admin for a key with a role that allows it",
            )
        if task is not None and not self.may_see_task(task):
            raise Forbidden(
                f"this key is limited to other tasks than {task!r}",
                hint="use a key created with --task for this task",
            )


def parse_bearer(header: str | None) -> str | None:
    """The key from an `Authorization: Bearer KEY` header, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def visible_tasks(principal: Principal, names: Sequence[str]) -> list[str]:
    return [n for n in names if principal.may_see_task(n)]
