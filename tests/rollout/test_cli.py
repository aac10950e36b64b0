"""The rollout commands as a user runs them: `lockgate release promote` with a gate,
shadow and canary commands, `lockgate audit list` and `audit verify` after tampering."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import update

from lockgate.store import Store
from lockgate.store.tables import audit_log
from tests.cli.kit import lockgate, make_project
from tests.rollout.kit import metrics, record_eval, task_yaml

GATE = """evaluation:
  gate_dataset: gate
  gate:
    min_accuracy: 0.85
"""


def _project(tmp_path: Path, database_url: str) -> Path:
    root = make_project(tmp_path / "project", task_yaml(extra=GATE))
    lockgate("release", "create", "routing", cwd=root, database=database_url)
    (root / "tasks" / "routing.yaml").write_text(task_yaml(confidence=0.85, extra=GATE))
    lockgate("release", "create", "routing", cwd=root, database=database_url)
    return root


def test_promote_refuses_a_failing_gate_with_its_numbers_and_an_override_is_audited(
    tmp_path: Path, database_url: str
) -> None:
    root = _project(tmp_path, database_url)
    store = Store(database_url)
    try:
        record_eval(store, 1, metrics(accuracy=0.80))
        refused = lockgate(
            "release", "promote", "routing@1", cwd=root, database=database_url, check=False
        )
        assert refused.returncode == 1
        assert "FAIL min_accuracy = 0.8 (bound 0.85)" in refused.stderr
        assert "--override-reason" in refused.stderr

        _, operator_key = store.keys.create("ops", "operator", (), actor="test")
        denied = lockgate(
            "release",
            "promote",
            "routing@1",
            "--override-reason",
            "urgent",
            "--api-key",
            operator_key,
            cwd=root,
            database=database_url,
            check=False,
        )
        assert denied.returncode == 1 and "only an admin" in denied.stderr

        done = lockgate(
            "release",
            "promote",
            "routing@1",
            "--override-reason",
            "urgent fix",
            cwd=root,
            database=database_url,
        )
        assert "routing@1 is live" in done.stdout
        listed = lockgate(
            "audit",
            "list",
            "--action",
            "release.gate_override",
            "--json",
            cwd=root,
            database=database_url,
        )
        (entry,) = json.loads(listed.stdout)
        assert entry["details"]["reason"] == "urgent fix"
        assert entry["details"]["failing"][0]["figure"] == 0.8
    finally:
        store.close()


def test_audit_list_filters_by_task_actor_and_action(tmp_path: Path, database_url: str) -> None:
    root = _project(tmp_path, database_url)
    store = Store(database_url)
    try:
        record_eval(store, 1, metrics(accuracy=0.9))
        record_eval(store, 2, metrics(accuracy=0.9))
    finally:
        store.close()
    lockgate("release", "promote", "routing@1", "--actor", "ann", cwd=root, database=database_url)
    lockgate("release", "promote", "routing@2", "--actor", "bob", cwd=root, database=database_url)
    lockgate(
        "keys",
        "create",
        "--name",
        "viewer-key",
        "--role",
        "viewer",
        cwd=root,
        database=database_url,
    )

    def entries(*args: str) -> list[dict[str, object]]:
        out = lockgate("audit", "list", "--json", *args, cwd=root, database=database_url)
        return list(json.loads(out.stdout))

    assert [e["action"] for e in entries()] == [
        "release.created",
        "release.created",
        "release.promote",
        "release.promote",
        "key.created",
    ]
    assert [e["subject"] for e in entries("--actor", "bob")] == ["routing@2"]
    assert len(entries("--action", "release.promote")) == 2
    assert all(e["task"] == "routing" for e in entries("--task", "routing"))
    assert len(entries("--task", "routing")) == 4
    assert [e["subject"] for e in entries("--limit", "2", "--action", "release.promote")] == [
        "routing@1",
        "routing@2",
    ]
    created = entries("--action", "release.created")
    assert created[1]["details"]["policy_changed"] is False  # no live release to compare with
    text = lockgate("audit", "list", "--actor", "ann", cwd=root, database=database_url).stdout
    assert "release.promote" in text and "routing@1" in text


def test_a_new_release_records_how_its_policy_differs_from_live(
    tmp_path: Path, database_url: str
) -> None:
    root = make_project(tmp_path / "project", task_yaml())
    lockgate("release", "create", "routing", cwd=root, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=root, database=database_url)
    (root / "tasks" / "routing.yaml").write_text(
        task_yaml().replace("auto_min_confidence: 0.8", "auto_min_confidence: 0.93")
    )
    lockgate("release", "create", "routing", cwd=root, database=database_url)
    out = lockgate(
        "audit", "list", "--action", "release.created", "--json", cwd=root, database=database_url
    )
    _, second = json.loads(out.stdout)
    assert second["details"]["policy_changed"] is True
    assert second["details"]["policy_diff"] == {"auto_min_confidence": {"from": 0.8, "to": 0.93}}


def test_audit_verify_names_the_changed_entry(tmp_path: Path, database_url: str) -> None:
    root = _project(tmp_path, database_url)
    assert (
        "intact: 2 entries" in lockgate("audit", "verify", cwd=root, database=database_url).stdout
    )
    store = Store(database_url)
    try:
        with store.engine.begin() as conn:
            conn.execute(update(audit_log).where(audit_log.c.id == 2).values(actor="mallory"))
    finally:
        store.close()
    broken = lockgate("audit", "verify", cwd=root, database=database_url, check=False)
    assert broken.returncode == 1
    assert "broken at entry 2 (release.created, " in broken.stderr
    assert "changed" in broken.stderr


def test_shadow_and_canary_from_the_command_line(tmp_path: Path, database_url: str) -> None:
    root = make_project(tmp_path / "project", task_yaml())
    run = lambda *args: lockgate(*args, cwd=root, database=database_url)  # noqa: E731
    run("release", "create", "routing")
    run("release", "promote", "routing@1")
    (root / "tasks" / "routing.yaml").write_text(
        task_yaml(answers=(("stolen", "fraud"), ("card", "cards")))
    )
    run("release", "create", "routing")
    run("release", "shadow", "routing@2")
    (root / "in.csv").write_text(
        "text\n"
        + "\n".join(f"ticket {i} about my {'card' if i % 2 else 'login'}" for i in range(40))
        + "\n"
    )
    run("run", "routing", "in.csv")
    assert "40 shadow runs decided" in run("release", "shadow-run", "routing").stdout
    report = json.loads(run("release", "shadow-report", "routing", "--json").stdout)
    assert report["release"] == "routing@2" and report["compared"] == 40
    assert report["runs"] == {"done": 40}
    text = run("release", "shadow-report", "routing").stdout
    assert "agreement with live" in text and "confusion (live -> shadow)" in text
    # The live side was a batch: a chunk's latency is never set beside one online decision's.
    assert report["live"]["latency_left_out_batch"] == 40
    assert report["live"]["latency_p50_ms"] is None
    assert "live latency leaves out 40 decisions made by batch jobs" in text

    refused = lockgate(
        "release",
        "canary",
        "routing@2",
        "--percent",
        "60",
        cwd=root,
        database=database_url,
        check=False,
    )
    assert refused.returncode == 1 and "at most 50" in refused.stderr
    assert "decides 10%" in run("release", "canary", "routing@2", "--percent", "10").stdout
    checked = json.loads(run("release", "canary-check", "routing", "--json").stdout)
    assert checked[0]["release"] == "routing@2" and checked[0]["rolled_back"] is False
    assert "no longer a canary" in run("release", "canary", "--stop", "routing").stdout
    actions = [e["action"] for e in json.loads(run("audit", "list", "--json").stdout)]
    for action in (
        "release.shadow_started",
        "release.shadow_stopped",
        "release.canary_started",
        "release.canary_stopped",
    ):
        assert action in actions


def test_lockgate_run_rolls_back_a_failing_canary_it_sent_traffic_to(
    tmp_path: Path, database_url: str
) -> None:
    limits = "rollout:\n  canary_max_failure_rate: 0.05\n  canary_min_decisions: 10\n"
    dead_llm = (
        "  - provider: openai\n    model: gpt-test\n"
        "    base_url: http://127.0.0.1:9/v1\n    retries: 0\n    timeout_s: 5\n"
    )
    root = make_project(tmp_path / "project", task_yaml(extra=limits))
    lockgate("release", "create", "routing", cwd=root, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=root, database=database_url)
    (root / "tasks" / "routing.yaml").write_text(task_yaml(models=dead_llm, extra=limits))
    lockgate("release", "create", "routing", cwd=root, database=database_url)
    lockgate("release", "canary", "routing@2", "--percent", "50", cwd=root, database=database_url)
    records = root / "tickets.jsonl"
    records.write_text(
        "".join(json.dumps({"id": f"t{i}", "text": f"ticket {i}"}) + "\n" for i in range(100))
    )

    ran = lockgate("run", "routing", str(records), cwd=root, database=database_url)

    assert "canary routing@2 rolled back" in ran.stderr
    store = Store(database_url)
    try:
        assert store.releases.get("routing", 2).stage == "retired"
        (entry,) = store.audit.entries("routing", action="release.canary_rollback")
        assert entry.actor == "lockgate run"
    finally:
        store.close()


def test_state_changing_release_commands_act_as_the_api_key(
    tmp_path: Path, database_url: str
) -> None:
    root = make_project(tmp_path / "project", task_yaml())
    run = lambda *args: lockgate(*args, cwd=root, database=database_url)  # noqa: E731
    run("release", "create", "routing")
    run("release", "promote", "routing@1")
    (root / "tasks" / "routing.yaml").write_text(task_yaml(confidence=0.85))
    run("release", "create", "routing")
    run("release", "promote", "routing@2")
    store = Store(database_url)
    try:
        _, reviewer_key = store.keys.create("rita", "reviewer", (), actor="test")
        _, operator_key = store.keys.create("ops", "operator", (), actor="test")
    finally:
        store.close()

    for command in (
        ("release", "rollback", "routing"),
        ("release", "shadow", "routing@1"),
        ("release", "shadow", "--stop", "routing"),
        ("release", "canary", "routing@1", "--percent", "10"),
        ("release", "canary", "--stop", "routing"),
        ("release", "create", "routing"),
        ("release", "canary-check", "routing"),
    ):
        refused = lockgate(
            *command, "--api-key", reviewer_key, cwd=root, database=database_url, check=False
        )
        assert refused.returncode == 1, command
        assert "the reviewer role may not manage releases" in refused.stderr, command

    assert (
        "routing@1 is live again"
        in run("release", "rollback", "routing", "--api-key", operator_key).stdout
    )
    run("release", "shadow", "routing@2", "--api-key", operator_key)
    run("release", "shadow", "--stop", "routing", "--api-key", operator_key)
    run("release", "canary", "routing@2", "--percent", "10", "--api-key", operator_key)
    run("release", "canary", "--stop", "routing", "--api-key", operator_key)
    entries = json.loads(run("audit", "list", "--json").stdout)
    by_action = {e["action"]: e["actor"] for e in entries}
    for action in (
        "release.rollback",
        "release.shadow_started",
        "release.shadow_stopped",
        "release.canary_started",
        "release.canary_stopped",
    ):
        assert by_action[action] == "ops", action


def test_shadow_report_reads_as_text_and_takes_the_release_as_task_at_n(
    tmp_path: Path, database_url: str
) -> None:
    root = make_project(tmp_path / "project", task_yaml())
    run = lambda *args: lockgate(*args, cwd=root, database=database_url)  # noqa: E731
    run("release", "create", "routing")
    run("release", "promote", "routing@1")
    (root / "tasks" / "routing.yaml").write_text(task_yaml(answers=(("card", "cards"),)))
    run("release", "create", "routing")
    run("release", "shadow", "routing@2")

    empty = run("release", "shadow-report", "routing")
    assert empty.stdout == "shadow routing@2 on field 'queue': no shadow runs yet\n"
    assert "lockgate release shadow-run routing" in empty.stderr

    (root / "in.csv").write_text("text\n" + "".join(f"my card {i}\n" for i in range(6)))
    run("run", "routing", "in.csv")
    run("release", "shadow-run", "routing")
    for ref in ("routing@2", "2"):
        text = run("release", "shadow-report", "routing", "--release", ref).stdout
        assert "shadow routing@2 on field 'queue'; runs: 6 done\n" in text
        assert "None" not in text and "{" not in text
