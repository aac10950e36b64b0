"""`deliver:` entries in a task file: typed, with errors that say what to write instead."""

from __future__ import annotations

from typing import Any

import pytest

from lockgate.decide.task import FileSinkSpec, PythonSinkSpec, WebhookSinkSpec, parse_task
from lockgate.errors import TaskFileError

TASK: dict[str, Any] = {
    "name": "routing",
    "input": {"text": {}},
    "output": {"queue": {"type": "enum", "values": ["cards", "other"]}},
    "models": [{"provider": "deterministic"}],
}


def problems(deliver: list[Any]) -> list[str]:
    with pytest.raises(TaskFileError) as caught:
        parse_task({**TASK, "deliver": deliver}, "tasks/routing.yaml")
    return caught.value.problems


def test_each_sink_kind_is_read_with_its_defaults() -> None:
    spec = parse_task(
        {
            **TASK,
            "deliver": [
                {"sink": "webhook", "url": "https://hooks.example.com/x", "secret_env": "HOOK"},
                {"sink": "file", "path": "out/decisions.jsonl", "max_tries": 3},
                {"sink": "python", "callable": "billing.hooks:on_decision"},
            ],
        },
        "tasks/routing.yaml",
    )
    webhook, file, python = spec.deliver
    assert isinstance(webhook, WebhookSinkSpec) and webhook.timeout_s == 10.0
    assert webhook.max_tries is None  # the delivery_max_tries setting applies
    assert isinstance(file, FileSinkSpec) and file.max_tries == 3
    assert isinstance(python, PythonSinkSpec) and python.callable == "billing.hooks:on_decision"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        pytest.param(
            {"sink": "kafka", "topic": "x"},
            "deliver: entry 0 names an unknown sink; use `sink:` webhook, file or python",
            id="unknown-sink",
        ),
        pytest.param(
            {"path": "out.jsonl"}, "deliver: entry 0 has no `sink:` key", id="no-sink-key"
        ),
        pytest.param(
            {"sink": "webhook", "secret_env": "HOOK"},
            "deliver.0.url: is required",
            id="missing-url",
        ),
        pytest.param(
            {"sink": "webhook", "url": "ftp://files.example.com/x", "secret_env": "HOOK"},
            "deliver.0.url: must be an http:// or https:// URL with a host",
            id="not-http",
        ),
        pytest.param(
            {"sink": "webhook", "url": "http://127.0.0.1:9000/h"},
            "deliver.0.secret_env: is required",
            id="missing-secret-env",
        ),
        pytest.param(
            {"sink": "webhook", "url": "http://127.0.0.1:9000/h", "secret_env": "abc def!"},
            "deliver.0.secret_env: must be the name of an environment variable",
            id="secret-instead-of-name",
        ),
        pytest.param(
            {"sink": "file", "path": "/var/log/x.jsonl"},
            "deliver.0.path: must be a path inside the project folder",
            id="absolute-path",
        ),
        pytest.param(
            {"sink": "file", "path": "../elsewhere.jsonl"},
            "deliver.0.path: must be a path inside the project folder",
            id="path-leaves-project",
        ),
        pytest.param(
            {"sink": "python", "callable": "billing.hooks.on_decision"},
            'deliver.0.callable: must be an import path like "package.module:function"',
            id="callable-without-colon",
        ),
        pytest.param(
            {"sink": "file", "path": "x.jsonl", "mode": "append"},
            "deliver.0.mode: is not a known key",
            id="unknown-key",
        ),
    ],
)
def test_a_bad_entry_gets_an_error_that_names_it(entry: dict[str, Any], expected: str) -> None:
    found = problems([entry])
    assert any(p.startswith(f"tasks/routing.yaml: {expected}") for p in found), found


def test_a_secret_pasted_into_the_task_file_is_not_echoed() -> None:
    pasted = "whsec_9f8e7d6c5b4a"
    entry = {"sink": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": pasted + "!"}
    assert pasted not in "\n".join(problems([entry]))
