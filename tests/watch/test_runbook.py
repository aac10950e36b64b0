"""The runbook is generated from the live configuration: every command in it parses, a change
of the task file shows in it, and no secret reaches it. And `lockgate set`, which the
readiness report's fixes use, changes a file only into a valid one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.kit import lockgate
from tests.watch.runbook_kit import assert_every_command_parses, parse

SINK = (
    "deliver=[{sink: webhook, url: 'https://hooks.example.com/services/T0/tok-3141592', "
    "secret_env: ROUTING_HOOK_SECRET}]"
)
CHANNELS = (
    "alert_channels={oncall: {type: email, host: smtp.example.com, from: lg@example.com, "
    "to: [oncall@example.com], username: lockgate, password_env: SMTP_PASSWORD}, "
    "chat: {type: webhook, url: 'https://hooks.slack.com/services/T1/B1/xoxb-2718', "
    "secret_env: SLACK_SECRET, format: slack}}"
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    lockgate("init", "support", cwd=tmp_path)
    return tmp_path / "support"


def test_every_command_in_the_runbook_parses(project: Path) -> None:
    lockgate(
        "set",
        "routing",
        SINK,
        "policy.two_person_when=[{field: queue, equals: fraud}]",
        cwd=project,
    )
    lockgate("set", "--settings", CHANNELS, cwd=project)
    lockgate(
        "set",
        "routing",
        "alerts=[{condition: failure_rate, channels: [log, oncall, chat]}]",
        cwd=project,
    )
    text = lockgate("runbook", "routing", cwd=project).stdout
    commands = assert_every_command_parses(text)
    for wanted in (
        "release rollback",
        "deliveries retry",
        "retrain",
        "train",
        "keys create",
        "keys revoke",
        "restore",
        "erase",
    ):
        assert any(c.startswith(f"lockgate {wanted} ") for c in commands), wanted
    for section in (
        "## Owner and purpose",
        "## Model chain",
        "## Failure modes",
        "## Alerts",
        "### A model is down",
        "### The budget is reached",
        "### A receiver is down",
        "### failure_rate (warning)",
    ):
        assert section in text


def test_a_command_that_does_not_parse_is_caught() -> None:
    with pytest.raises(AssertionError, match="no command"):
        parse("lockgate release rollbak routing")
    with pytest.raises(Exception, match="No such option"):
        parse("lockgate release rollback routing --to 3")


def test_changing_the_task_file_changes_the_runbook(project: Path) -> None:
    before = lockgate("runbook", "routing", cwd=project).stdout
    assert "| 0 | local-classifier | primary | 30 s | 3 (2 retries)" in before
    assert "**Owner:** support-platform" in before
    lockgate(
        "set",
        "routing",
        "models.0.timeout_s=4",
        "models.0.retries=1",
        "owner=payments-ops",
        cwd=project,
    )
    after = lockgate("runbook", "routing", cwd=project).stdout
    assert after != before
    assert "| 0 | local-classifier | primary | 4 s | 2 (1 retry)" in after
    assert "**Owner:** payments-ops" in after
    lockgate("set", "routing", "budget={per_day: {calls: 100}, on_hard_limit: refuse}", cwd=project)
    budgeted = lockgate("runbook", "routing", cwd=project).stdout
    assert "requests are refused with 429" in budgeted
    assert "The task has no budget" in after and "The task has no budget" not in budgeted


def test_no_secret_reaches_the_runbook(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "hunter2-smtp")
    monkeypatch.setenv("ROUTING_HOOK_SECRET", "sink-secret-77")
    monkeypatch.setenv("SLACK_SECRET", "slack-secret-55")
    lockgate("set", "routing", SINK, cwd=project)
    lockgate("set", "--settings", CHANNELS, cwd=project)
    lockgate("set", "routing", "alerts=[{condition: failure_rate, channels: [chat]}]", cwd=project)
    lockgate("keys", "create", "--name", "ana", "--role", "reviewer", cwd=project)
    text = lockgate("runbook", "routing", "--out", "RUNBOOK.md", cwd=project).stdout
    written = (project / "RUNBOOK.md").read_text()
    report = lockgate("readiness", "routing", "--json", cwd=project).stdout
    for secret in (
        "hunter2-smtp",
        "sink-secret-77",
        "slack-secret-55",
        "tok-3141592",
        "xoxb-2718",
        "lg_",
    ):
        assert secret not in written and secret not in text and secret not in report, secret
    assert "webhook to hooks.example.com (signed with $ROUTING_HOOK_SECRET)" in written
    assert "**Reviewers (keys):** ana" in written
    assert "**Asked by (keys):** no key that may submit yet" in written


def test_set_refuses_a_change_that_breaks_the_file_and_leaves_it_as_it_was(
    project: Path,
) -> None:
    task_file = project / "tasks" / "routing.yaml"
    before = task_file.read_text()
    result = lockgate("set", "routing", "policy.spot_check_rate=2", cwd=project, check=False)
    assert result.returncode != 0
    assert result.stderr.splitlines()[0].startswith("error: 1 problem in task files")
    assert "policy.spot_check_rate" in result.stderr
    assert task_file.read_text() == before
    result = lockgate("set", "routing", "policy.spot_check_rate", cwd=project, check=False)
    assert result.returncode != 0 and "is not KEY=VALUE" in result.stderr
    assert task_file.read_text() == before
    settings = project / "lockgate.yaml"
    kept = settings.read_text()
    result = lockgate(
        "set", "--settings", "alert_channels.x={type: pager}", cwd=project, check=False
    )
    assert result.returncode != 0 and result.stderr.startswith(
        "error: lockgate.yaml: alert_channels"
    )
    assert settings.read_text() == kept


def test_set_keeps_comments_and_layout(project: Path) -> None:
    task_file = project / "tasks" / "routing.yaml"
    lockgate("set", "routing", "policy.spot_check_rate=0.02", "models.1.timeout_s=5", cwd=project)
    text = task_file.read_text()
    assert "# tried in order: when a model fails" in text
    assert "  spot_check_rate: 0.02\n" in text
    assert "  - provider: rules\n    rules:\n" in text and "    timeout_s: 5\n" in text
