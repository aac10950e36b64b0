"""The command line as a user meets it: clear output, one-line errors, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lockgate.cli.main import build_command
from tests.cli.kit import lockgate, lockgate_command, make_project


def command_tree() -> list[tuple[list[str], bool]]:
    """Every command and command group of the CLI as (argument list, is a group), the root
    (an empty list) first."""
    paths: list[tuple[list[str], bool]] = []

    def walk(command: Any, path: list[str]) -> None:
        commands = getattr(command, "commands", None)  # a group (Typer vendors its own Click)
        paths.append((path, commands is not None))
        for name, sub in (commands or {}).items():
            walk(sub, [*path, name])

    walk(build_command(), [])
    return paths


def command_paths() -> list[list[str]]:
    """Every command (not group) of the CLI as its argument list, e.g. ["release", "promote"]."""
    return [path for path, group in command_tree() if not group]


def subcommands(path: list[str]) -> list[str]:
    return [p[-1] for p, _ in command_tree() if p[:-1] == path and p]


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=" ".join(p)) for p in command_paths()],
)
def test_every_command_has_help_with_an_example(path: list[str], tmp_path: Path) -> None:
    result = lockgate(*path, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert f"Usage: lockgate {' '.join(path)} " in result.stdout
    assert f"Example: lockgate {' '.join(path)}" in result.stdout


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, id=" ".join(p) or "lockgate") for p, group in command_tree() if group],
)
def test_every_command_group_has_help_listing_its_commands(path: list[str], tmp_path: Path) -> None:
    result = lockgate(*path, "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert f"Usage: {' '.join(['lockgate', *path])} [OPTIONS] COMMAND" in result.stdout
    listed = {line.strip("│ ").split(" ")[0] for line in result.stdout.splitlines()}
    assert set(subcommands(path)) <= listed


def test_python_dash_m_lockgate_starts_the_command_line(tmp_path: Path) -> None:
    """The one help test that starts a real process: `python -m lockgate` is an entry point."""
    result = subprocess.run(
        lockgate_command("--help"),
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: lockgate [OPTIONS] COMMAND" in result.stdout
    assert {"decide", "release", "serve"} <= {
        line.strip("│ ").split(" ")[0] for line in result.stdout.splitlines()
    }


def test_a_broken_task_file_gives_one_error_listing_each_problem(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project / "tasks" / "broken.yaml").write_text(
        "name: broken\ninput: {}\noutput:\n  q: {type: enum, values: [a]}\nmodels: []\n"
    )
    result = lockgate("tasks", cwd=project, check=False)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == "error: 3 problems in task files:"
    assert "  tasks/broken.yaml: output.q.values: must list at least 2 values" in lines
    assert "  tasks/broken.yaml: input: declare at least one field" in lines
    assert "Traceback" not in result.stderr


def test_init_scaffolds_a_project_that_trains_releases_and_decides(tmp_path: Path) -> None:
    lockgate("init", "support", cwd=tmp_path)
    project = tmp_path / "support"
    assert ".lockgate/" in (project / ".gitignore").read_text()
    trained = lockgate("train", "routing", "--data", "data/routing-train.csv", cwd=project)
    assert "held-out queue: accuracy" in trained.stdout
    lockgate("release", "create", "routing", cwd=project)
    lockgate("release", "promote", "routing@1", cwd=project)
    decided = json.loads(
        lockgate(
            "decide", "routing", "--input", '{"text": "Someone stole my card"}', cwd=project
        ).stdout
    )
    assert decided["release"] == "routing@1"
    assert decided["output"]["queue"] == "fraud"
    assert decided["route"] == "review"
    assert decided["reason"] == "policy.review_when.0 matched (output queue equals fraud)"
    assert decided["reason_text"] == "queue is fraud: the policy sends fraud to review"


def test_init_refuses_to_overwrite_a_project(tmp_path: Path) -> None:
    lockgate("init", "p", cwd=tmp_path)
    result = lockgate("init", "p", cwd=tmp_path, check=False)
    assert result.returncode != 0
    assert result.stderr.startswith("error: ")


def test_the_same_key_returns_the_stored_decision(tmp_path: Path, database_url: str) -> None:
    project = make_project(tmp_path)
    lockgate("release", "create", "routing", cwd=project, database=database_url)
    lockgate("release", "promote", "routing@1", cwd=project, database=database_url)
    args = ("decide", "routing", "--input", '{"text": "hi"}', "--idempotency-key", "k-1")
    first = json.loads(lockgate(*args, cwd=project, database=database_url).stdout)
    second = json.loads(lockgate(*args, cwd=project, database=database_url).stdout)
    assert second["id"] == first["id"]
    assert (first["replayed"], second["replayed"]) == (False, True)
    clash = lockgate(
        "decide",
        "routing",
        "--input",
        '{"text": "other"}',
        "--idempotency-key",
        "k-1",
        cwd=project,
        database=database_url,
        check=False,
    )
    assert clash.returncode != 0
    assert "Idempotency-Key is already in use" in clash.stderr


def test_bad_input_is_refused_with_what_to_fix(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("release", "promote", "routing@1", cwd=project)
    result = lockgate("decide", "routing", "--input", '{"txt": 1}', cwd=project, check=False)
    assert result.returncode != 0
    assert result.stderr.strip() == "error: input.text: is required (string)"
    result = lockgate("decide", "routing", "--input", "{not json", cwd=project, check=False)
    assert "--input is not valid JSON" in result.stderr


def test_deciding_without_a_live_release_says_what_to_run(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    result = lockgate("decide", "routing", "--input", '{"text": "x"}', cwd=project, check=False)
    assert "task 'routing' has no live release" in result.stderr
    assert "lockgate release create routing" in result.stderr


def test_release_lifecycle_from_the_command_line(tmp_path: Path, database_url: str) -> None:
    project = make_project(tmp_path)
    run = lambda *a: lockgate(*a, cwd=project, database=database_url)  # noqa: E731
    assert "created routing@1" in run("release", "create", "routing").stdout
    assert "unchanged: routing@1" in run("release", "create", "routing").stdout
    task_file = project / "tasks" / "routing.yaml"
    task_file.write_text(task_file.read_text().replace("0.8", "0.7"))
    assert "created routing@2" in run("release", "create", "routing").stdout
    run("release", "promote", "routing@1")
    run("release", "promote", "routing@2")
    diff = run("release", "diff", "routing@1", "routing@2").stdout
    assert "-    auto_min_confidence: 0.8" in diff and "+    auto_min_confidence: 0.7" in diff
    assert "routing@1 is live again" in run("release", "rollback", "routing").stdout
    listed = json.loads(run("release", "list", "routing", "--json").stdout)
    assert [(r["ref"], r["stage"]) for r in listed] == [
        ("routing@1", "live"),
        ("routing@2", "retired"),
    ]
    decided = json.loads(run("decide", "routing", "--input", '{"text": "x"}').stdout)
    assert decided["release"] == "routing@1"
    assert "audit log intact: 5 entries" in run("audit", "verify").stdout


FAILING_TASK = """\
name: spam
input:
  text: {type: string}
output:
  spam: {type: enum, values: [yes, no]}
models:
  - provider: deterministic
    confidence: 0.9
    answers:
      - {if_contains: "winner", output: {spam: maybe}}
"""


def test_decide_exits_non_zero_when_the_decision_failed(tmp_path: Path) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks/spam.yaml").write_text(FAILING_TASK)
    lockgate("release", "create", "spam", cwd=tmp_path)
    lockgate("release", "promote", "spam@1", cwd=tmp_path)

    failed = lockgate("decide", "spam", "--input", '{"text": "you are a winner"}', cwd=tmp_path,
                      check=False)  # fmt: skip
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["status"] == "failed"
    assert failed.stderr.startswith("error: the decision failed: ")

    decided = lockgate("decide", "spam", "--input", '{"text": "lunch at noon?"}', cwd=tmp_path)
    assert json.loads(decided.stdout)["output"]["spam"] in ("yes", "no")


def test_a_rule_whose_answer_is_no_valid_output_is_refused_at_release_create(
    tmp_path: Path,
) -> None:
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks/spam.yaml").write_text(
        FAILING_TASK.split("models:")[0]
        + "models:\n  - provider: rules\n    rules:\n"
        + "      - {if_matches: winner, then: {spam: true}}\n"
    )
    refused = lockgate("release", "create", "spam", cwd=tmp_path, check=False)
    assert refused.returncode == 2
    assert "models (rules): rules.0.then: spam: must be one of yes, no" in refused.stderr, (
        refused.stderr
    )
    assert "every decision this answer is given to would fail" in refused.stderr


def test_version_and_dash_h(tmp_path: Path) -> None:
    from importlib.metadata import version

    assert lockgate("--version", cwd=tmp_path).stdout == f"lockgate {version('lockgate')}\n"
    assert "Usage: lockgate [OPTIONS] COMMAND" in lockgate("-h", cwd=tmp_path).stdout
    claim = lockgate("review", "claim", "-h", cwd=tmp_path)
    assert "Usage: lockgate review claim" in claim.stdout
    assert "-h, --help" in claim.stdout


def _command(path: list[str]) -> Any:
    command = build_command()
    for name in path:
        command = command.commands[name]
    return command


def _help_at_80_columns(path: list[str]) -> str:
    command = _command(path)
    context = command.context_class(
        command, info_name=" ".join(["lockgate", *path]), terminal_width=80
    )
    return str(command.get_help(context))


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=" ".join(p) or "lockgate") for p, _ in command_tree()]
)
def test_help_reads_well_at_80_columns(path: list[str]) -> None:
    """Options show a word, not a type (`--api-key KEY`, not `<str>`); an example is printed on
    one line as it must be typed; a command listed in its group is never cut mid-sentence."""
    text = _help_at_80_columns(path)
    assert not re.search(r"--[\w-]+ <", text), text
    example = re.search(r"Example: (lockgate[^\n]*)", _command(path).help or "")
    if example:
        assert f"  Example: {example[1].strip()}\n" in text
    listed = text.partition("\nCommands:\n")[2].splitlines()
    assert not [line for line in listed if line.rstrip().endswith("...")], text


def _options() -> list[tuple[str, list[str], str]]:
    found = []
    for path, _ in command_tree():
        for param in _command(path).params:
            if param.param_type_name == "option":
                found.append((" ".join(path), list(param.opts), param.help or ""))
    return found


def test_one_option_name_per_concept() -> None:
    options = _options()
    api_keys = [(cmd, opts) for cmd, opts, text in options if "API key" in text]
    assert api_keys and all(opts == ["--api-key"] for _, opts in api_keys), api_keys
    assert not [cmd for cmd, opts, _ in options if "--key" in opts]
    idempotency = [opts for _, opts, text in options if "idempotency" in text.lower()]
    releases = [(cmd, text) for cmd, opts, text in options if opts == ["--release"]]
    assert all(opts == ["--idempotency-key"] for opts in idempotency)
    assert releases and all("TASK@N" in text for _, text in releases), releases


def test_release_options_take_task_at_n_or_n(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    lockgate("release", "create", "routing", cwd=project)
    lockgate("release", "promote", "routing@1", cwd=project)
    for ref in ("routing@1", "1"):
        decided = lockgate("decide", "routing", "--input", '{"text": "x"}', "--release", ref,
                           cwd=project)  # fmt: skip
        assert json.loads(decided.stdout)["release"] == "routing@1"
    (project / "in.csv").write_text("id,text\n1,hello\n")
    ran = lockgate("run", "routing", "in.csv", "--release", "routing@1", "--json", cwd=project)
    assert json.loads(ran.stdout)["total"] == 1
    wrong = lockgate("decide", "routing", "--input", "{}", "--release", "other@1", cwd=project,
                     check=False)  # fmt: skip
    assert "--release 'other@1': name a release of routing" in wrong.stderr


def test_serve_says_where_the_review_pages_are(tmp_path: Path) -> None:
    assert "review pages under /ui/" in lockgate("serve", "--help", cwd=tmp_path).stdout
