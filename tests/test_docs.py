"""The documentation covers every command, setting and task-file key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lockgate.decide.task import (
    InputField,
    MetadataField,
    ModelSpec,
    OutputField,
    PolicySpec,
    TaskSpec,
)
from lockgate.settings import Settings
from tests.cli.test_commands import command_paths

DOCS = Path(__file__).parent.parent / "docs"


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p))
def test_every_command_is_documented_with_an_example(path: list[str]) -> None:
    text = (DOCS / "cli.md").read_text()
    command = "lockgate " + " ".join(path)
    assert f"## {command}\n" in text
    section = text.split(f"## {command}\n", 1)[1].split("\n## ", 1)[0]
    assert f"    {command}" in section, f"{command} needs an example in docs/cli.md"


def test_every_setting_is_documented() -> None:
    text = (DOCS / "operations.md").read_text()
    for field in dataclasses.fields(Settings):
        if field.name != "project_dir":
            assert f"`{field.name}`" in text, field.name


@pytest.mark.parametrize(
    "model", [TaskSpec, InputField, MetadataField, OutputField, ModelSpec, PolicySpec]
)
def test_every_task_file_key_is_documented(model: type) -> None:
    text = (DOCS / "task-files.md").read_text()
    for name, field in model.model_fields.items():
        key = field.alias or name
        assert f"`{key}`" in text, f"{model.__name__}.{key} is not in docs/task-files.md"
