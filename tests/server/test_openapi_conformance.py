"""`/openapi.json` says what the server does: schemathesis, every check (`--checks all`), run
against a live `lockgate serve` on loopback finds nothing (issue 11, finding 16).

Each run is bounded (examples per operation, steps per stateful scenario) and seeded, so that
it takes seconds and a failure can be replayed with the same seed. The server is the real
process an operator starts, on a database that holds a live release and decisions in each
state, so that reads find something and reviews have something to act on.

Which keys run which phases (every run uses every check):

- `admin`, on SQLite and on PostgreSQL, runs every phase (examples, coverage, fuzzing,
  stateful). Admin holds every permission, so every route answers it as allowed: the coverage
  phase's boundary values and unexpected methods reach each route's own validation.
- `viewer` and `feedback`, on SQLite, run the examples, fuzzing and stateful phases. Between
  them they are refused every action (a `feedback` key may only give feedback, a `viewer` key
  may not), so every route that can answer 403 does so to one of them. The coverage phase is
  left to admin: with a key a route refuses, its hundreds of boundary cases all get the same
  403.

The other roles (operator, reviewer, submitter) are allowed a subset of admin's actions and
refused a subset of what viewer or feedback are refused, so their runs met no (route, status)
pair the four runs above do not: measured from schemathesis's HAR reports of all six roles
on 2026-11-29 (benchmarks/RESULTS.md, "2026-11-29 night"). What a role may do on each route is
tested in-process, per role, by tests/server/test_roles.py;
`test_the_roles_run_cover_every_answer_a_route_gives` keeps this choice true if the
permission table changes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import httpx
import pytest

from lockgate.security import PERMISSIONS, ROLES, Action, Role
from tests.cli.kit import lockgate, make_project
from tests.conftest import _require_postgres
from tests.server.test_group_commit import LoggedServer

pytestmark = pytest.mark.slow

#: Test cases per operation in the fuzzing phase; the coverage phase (every boundary value and
#: unexpected method the schema defines, most of the cost) and the examples phase have no such
#: bound, the stateful one its max-steps. An admin run (every phase) takes about 17 s of CPU
#: (14 s schemathesis, 3 s the server), a run without the coverage phase about 7 s.
MAX_EXAMPLES = 4
#: Every phase, for the admin key.
ALL_PHASES = "examples,coverage,fuzzing,stateful"
#: For the keys that are refused most routes (see the module docstring).
REFUSED_PHASES = "examples,fuzzing,stateful"
#: Fixed so that a run can be repeated; LOCKGATE_SCHEMATHESIS_SEED tries another.
SEED = int(os.environ.get("LOCKGATE_SCHEMATHESIS_SEED", "20261129"))

SETTINGS = """\
# Every schemathesis request comes from 127.0.0.1, and it sends wrong keys on purpose (the
# ignored_auth check) hundreds of times a run. Past auth_failure_limit the server answers them
# 429 instead of 401, as it must (tests/server/test_api_keys.py); schemathesis counts only
# 401 and 403 as refusing a wrong key, so the limit is set above what a run sends.
auth_failure_limit: 100000
"""

#: Per-operation settings, each with its reason; nothing else is relaxed.
CONFIG = """\
[phases.stateful]
max-steps = 4

# `input` is checked against the input schema of the task named in the path. That schema is in
# the task's live release, not in /openapi.json: one operation serves every task, and OpenAPI
# cannot tie a body's schema to a path parameter's value. A body whose `input` lacks the task's
# fields is well formed by /openapi.json and gets the documented 422 (InputError).
[[operations]]
include-path = "/v1/tasks/{task}/decisions"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "409", "422", "429", "5xx",
]

# Likewise `output` against the output schema of the decision's task (422, documented).
[[operations]]
include-path = "/v1/reviews/{decision_id}/correct"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "409", "422", "429", "5xx",
]
"""


@dataclass
class Served:
    """A `lockgate serve` process, its base URL and a key per role."""

    server: LoggedServer
    base: str
    keys: dict[str, str] = field(default_factory=dict)


def start(project: Path, database_url: str) -> Served:
    """Release 1 of the routing task live, a key per role, `lockgate serve` on a port it
    picks, and decisions in each state (made by a submitter key of their own, so that no role
    under test reviews its own)."""
    run: Callable[..., subprocess.CompletedProcess[str]] = lambda *a: lockgate(  # noqa: E731
        *a, cwd=project, database=database_url
    )
    run("release", "create", "routing")
    run("release", "promote", "routing@1")
    keys = {}
    for name in (*ROLES, "app"):
        role = "submitter" if name == "app" else name
        keys[name] = run("keys", "create", "--name", name, "--role", role).stdout.splitlines()[-1]
    server = LoggedServer(project, database_url, project.parent / "serve.log")
    served = Served(server, server.wait_until_serving(), keys)
    seed_decisions(served)
    return served


def seed_decisions(served: Served) -> None:
    headers = {"Authorization": f"Bearer {served.keys['app']}"}
    texts = ["my card was stolen", "card stolen at the station", "stolen wallet", "hello"]
    for number, text in enumerate(texts):
        made = httpx.post(
            f"{served.base}/v1/tasks/routing/decisions",
            json={"input": {"text": text}},
            headers={**headers, "Idempotency-Key": f"seed-{number}"},
            timeout=10,
        )
        assert made.status_code == 201, made.text


@pytest.fixture(scope="module")
def servers(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[str], Served]]:
    """`servers(backend)`: one server per backend for the module, started when first asked."""
    running: dict[str, Served] = {}
    databases: list[Iterator[str]] = []

    def database(backend: str, root: Path) -> str:
        if backend == "sqlite":
            template: Path = request.getfixturevalue("sqlite_template")
            shutil.copyfile(template, root / "lockgate.db")
            return f"sqlite:///{root / 'lockgate.db'}"
        _require_postgres()
        made = request.getfixturevalue("postgres_pool").lend()
        databases.append(made)
        return made.__enter__()

    def get(backend: str) -> Served:
        if backend not in running:
            root = tmp_path_factory.mktemp(f"schemathesis-{backend}")
            project = make_project(root / "project")
            (project / "lockgate.yaml").write_text(SETTINGS)
            running[backend] = start(project, database(backend, root))
        return running[backend]

    try:
        yield get
    finally:
        for served in running.values():
            served.server.stop()
        for made in databases:
            made.__exit__(None, None, None)


def schemathesis(
    served: Served, role: Role, phases: str, workdir: Path
) -> subprocess.CompletedProcess[str]:
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file", str(config), "--no-color",
        "run", f"{served.base}/openapi.json",
        "--checks", "all",
        "--phases", phases,
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        "--generation-database", "none",
        "--request-timeout", "20",
        "--header", f"Authorization: Bearer {served.keys[role]}",
    ]  # fmt: skip
    return subprocess.run(
        command, cwd=workdir, capture_output=True, text=True, timeout=300, check=False
    )


#: Refused between them every action (asserted below); see the module docstring.
REFUSED_ROLES: tuple[Role, ...] = ("viewer", "feedback")

CASES = [
    pytest.param("sqlite", "admin", ALL_PHASES, id="sqlite-admin"),
    pytest.param("postgresql", "admin", ALL_PHASES, id="postgresql-admin"),
] + [pytest.param("sqlite", role, REFUSED_PHASES, id=f"sqlite-{role}") for role in REFUSED_ROLES]


def test_the_roles_run_cover_every_answer_a_route_gives() -> None:
    """Admin is allowed every action, and every action is refused to one of the refused roles:
    so each route's allowed answer and its 403 both come up in the runs above, whatever the
    other roles hold."""
    actions = set(get_args(Action))
    assert PERMISSIONS["admin"] == actions
    assert set().union(*(actions - PERMISSIONS[role] for role in REFUSED_ROLES)) == actions
    for role in ROLES:
        assert PERMISSIONS[role] <= PERMISSIONS["admin"]


@pytest.mark.timeout(300)  # about 17 s of CPU; several times that on a machine under load
@pytest.mark.parametrize(("backend", "role", "phases"), CASES)
def test_schemathesis_finds_nothing_with_every_check(
    servers: Callable[[str], Served], backend: str, role: Role, phases: str, tmp_path: Path
) -> None:
    served = servers(backend)
    result = schemathesis(served, role, phases, tmp_path)
    assert result.returncode == 0, (
        f"{result.stdout[-20000:]}\n{result.stderr[-3000:]}\n"
        f"server log:\n{served.server.output()[-5000:]}"
    )
