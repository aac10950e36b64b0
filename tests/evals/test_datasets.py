"""Datasets: importing labeled rows, sealing them, and refusing a sealed set that was changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import update

from lockgate.decide.decision import input_hash
from lockgate.errors import ConfigError, Conflict
from lockgate.evals import service
from lockgate.evals.datasets import check_name, read_dataset, read_datasets
from lockgate.store.tables import dataset_rows
from tests.evals.kit import make_project, project_runtime, write_rows

GATE = [
    ("my card is blocked", "cards"),
    ("please pay my bill", "payments"),
    ("card stolen in Lisbon", "fraud"),
    ("hello there", "other"),
]


def test_every_bad_row_is_named_with_its_field_and_no_value_is_echoed(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    with project_runtime(project, f"sqlite:///{tmp_path}/db.sqlite") as runtime:
        task = runtime.task("routing")
    secret = "jane.doe@example.com wants a refund"
    path = write_rows(
        tmp_path / "bad.csv",
        [
            ("fine row", "cards"),
            (secret, "not-a-queue"),  # line 3
            ("", "cards"),  # line 4: empty text is allowed (a string), but kept
            ("another", ""),  # line 5: no label
            ("x" * 4001, "other"),  # line 6: too long
            ("more", "nope"),  # line 7
        ],
    )
    with pytest.raises(ConfigError) as caught:
        read_dataset(task, path)
    message = caught.value.message
    assert "output.queue: is not one of the field's values" in message
    assert "(2 rows: lines 3, 7)" in message
    assert "output.queue: is missing (1 row: line 5)" in message
    assert "input.text: is 4001 characters long; at most 4000 allowed (1 row: line 6)" in message
    assert "jane.doe" not in str(caught.value)
    assert "not-a-queue" not in str(caught.value)


def test_inputs_are_normalised_and_hashed_like_the_pipeline_does(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    path = tmp_path / "rows.jsonl"
    path.write_text(
        json.dumps({"text": "  my card  ", "queue": "cards", "id": 7, "extra": "ignored"}) + "\n"
    )
    with project_runtime(project, f"sqlite:///{tmp_path}/db.sqlite") as runtime:
        (row,) = read_dataset(runtime.task("routing"), path)
    assert row.input == {"text": "my card"}
    assert row.expected == {"queue": "cards"}
    assert row.input_hash == input_hash({"text": "my card"})


def test_a_later_file_relabels_the_rows_it_repeats_in_place_and_adds_the_rest(
    tmp_path: Path,
) -> None:
    project = make_project(tmp_path)
    first = write_rows(tmp_path / "first.csv", [*GATE, ("my card is blocked", "cards")])
    later = write_rows(
        tmp_path / "later.csv",
        [
            ("  my card is blocked ", "fraud"),  # the same input once normalised: both rows
            ("hello there", "other"),  # the same label: repeated, not changed
            ("where is my refund", "payments"),  # new
        ],
    )
    with project_runtime(project, f"sqlite:///{tmp_path}/db.sqlite") as runtime:
        task = runtime.task("routing")
        rows, (report,) = read_datasets(task, [first, later])
        with pytest.raises(ConfigError) as caught:
            read_datasets(task, [first, write_rows(tmp_path / "bad.csv", [("x", "nope")])])

    assert [(r.seq, r.input["text"], r.expected["queue"]) for r in rows] == [
        (1, "my card is blocked", "fraud"),
        (2, "please pay my bill", "payments"),
        (3, "card stolen in Lisbon", "fraud"),
        (4, "hello there", "other"),
        (5, "my card is blocked", "fraud"),
        (6, "where is my refund", "payments"),
    ]
    assert (report.source, report.repeated, report.changed, report.added) == (
        str(later),
        2,
        1,
        1,
    )
    # A later file's bad rows are named with that file, as the first file's would be.
    assert caught.value.message.startswith(f"{tmp_path / 'bad.csv'}: cannot use these rows")


def test_a_sealed_dataset_is_immutable_and_adding_it_again_unchanged_is_a_no_op(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path)
    gate = write_rows(tmp_path / "gate.csv", GATE)
    changed = write_rows(tmp_path / "changed.csv", [*GATE[:3], ("hello there", "cards")])
    with project_runtime(project, database_url) as runtime:
        task = runtime.task("routing")
        first, created = runtime.store.datasets.add(
            "routing", "gate", read_dataset(task, gate), sealed=True, source="gate.csv", actor="ann"
        )
        assert created and first.sealed and first.rows == 4
        again, created_again = runtime.store.datasets.add(
            "routing", "gate", read_dataset(task, gate), sealed=True, source="gate.csv", actor="ann"
        )
        assert not created_again
        assert again.id == first.id
        with pytest.raises(Conflict, match="is sealed and cannot change"):
            runtime.store.datasets.add(
                "routing", "gate", read_dataset(task, changed), sealed=True, source=None, actor="x"
            )
        assert runtime.store.datasets.get("routing", "gate").content_hash == first.content_hash
        added = [e for e in runtime.store.audit.entries("routing") if e.action == "dataset.add"]
        assert len(added) == 1
        assert added[0].actor == "ann"
        assert added[0].details["content_hash"] == first.content_hash
        assert added[0].details["sealed"] is True


def test_an_open_dataset_can_be_replaced_and_each_change_is_audited(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path)
    with project_runtime(project, database_url) as runtime:
        task = runtime.task("routing")
        one = read_dataset(task, write_rows(tmp_path / "a.csv", GATE[:2]))
        two = read_dataset(task, write_rows(tmp_path / "b.csv", GATE))
        runtime.store.datasets.add("routing", "calib", one, sealed=False, source=None, actor="a")
        replaced, created = runtime.store.datasets.add(
            "routing", "calib", two, sealed=False, source=None, actor="b"
        )
        assert created and replaced.rows == 4
        assert [r.expected["queue"] for r in runtime.store.datasets.rows(replaced)] == [
            q for _, q in GATE
        ]
        actions = [e.action for e in runtime.store.audit.entries("routing")]
        assert actions.count("dataset.add") == 2


def test_a_changed_row_of_a_sealed_dataset_is_detected_before_an_eval(
    tmp_path: Path, database_url: str
) -> None:
    project = make_project(tmp_path)
    with project_runtime(project, database_url) as runtime:
        rows = read_dataset(runtime.task("routing"), write_rows(tmp_path / "g.csv", GATE))
        dataset, _ = runtime.store.datasets.add(
            "routing", "gate", rows, sealed=True, source=None, actor="a"
        )
        assert len(service.verified_rows(runtime.store.datasets, dataset)) == 4
        with runtime.store.engine.begin() as conn:
            conn.execute(
                update(dataset_rows)
                .where(dataset_rows.c.dataset_id == dataset.id, dataset_rows.c.seq == 2)
                .values(expected={"queue": "cards"})
            )
        with pytest.raises(ConfigError, match="was changed in the database after it was added"):
            service.verified_rows(runtime.store.datasets, dataset)


def test_a_missing_label_column_is_named_as_such(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    path = write_rows(tmp_path / "unlabeled.csv", [("a",), ("b",), ("c",)], header=("text",))
    with project_runtime(project, f"sqlite:///{tmp_path}/db.sqlite") as runtime:
        task = runtime.task("routing")
    with pytest.raises(ConfigError) as caught:
        read_dataset(task, path)
    assert (
        "output.queue: is missing (every row: is the column missing? 3 rows: lines 2, 3, 4)"
        in caught.value.message
    )


@pytest.mark.parametrize("name", ["Gate", "1st", "a" * 64, "gate set", ""])
def test_a_dataset_name_must_be_a_plain_lower_case_name(name: str) -> None:
    with pytest.raises(ConfigError, match="is not a valid dataset name"):
        check_name(name)
