"""Training the local classifier: checked records, held-out scores, content-addressed artifacts."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from pathlib import Path
from typing import Any

import joblib
import pytest

from lockgate.decide.records import iter_records
from lockgate.decide.task import TaskSpec, parse_task
from lockgate.errors import ConfigError
from lockgate.providers.classifier_training import (
    ARTIFACT_HEADER,
    TrainReport,
    artifact_folder,
    latest_artifact,
    load_artifact,
    train_classifier,
)
from lockgate.settings import Settings

VOCABULARY = {
    "billing": ["invoice", "refund", "charged", "payment", "bill", "overcharged"],
    "tech": ["crash", "error", "bug", "login", "password", "server"],
    "sales": ["quote", "demo", "pricing", "discount", "purchase", "license"],
}
FILLER = ["please", "help", "today", "hi", "my", "the", "about"]


def make_task(output: dict[str, Any] | None = None) -> TaskSpec:
    return parse_task(
        {
            "name": "routing",
            "input": {"subject": {"type": "string"}, "body": {"type": "string"}},
            "output": output or {"queue": {"type": "enum", "values": [*VOCABULARY, "other"]}},
            "models": [{"provider": "local-classifier"}],
        },
        "tasks/routing.yaml",
    )


def make_rows(per_label: int = 20, seed: int = 1) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(per_label):
        for label, words in VOCABULARY.items():
            body = " ".join(rng.sample(words, 3) + rng.sample(FILLER, 2))
            rows.append({"subject": rng.choice(words).title(), "body": body, "queue": label})
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(project_dir=tmp_path, database_url="sqlite://")


@pytest.fixture
def report(settings: Settings, tmp_path: Path) -> TrainReport:
    return train_classifier(make_task(), write_csv(tmp_path / "train.csv", make_rows()), settings)


def test_the_artifact_is_named_by_the_sha256_of_its_bytes(report: TrainReport) -> None:
    assert report.path.name == f"{report.sha256}.joblib"
    assert hashlib.sha256(report.path.read_bytes()).hexdigest() == report.sha256


def test_the_metadata_records_data_hash_rows_labels_and_scores(report: TrainReport) -> None:
    meta = json.loads(report.path.with_suffix(".json").read_text())
    assert meta["task"] == "routing"
    assert meta["data_hash"] == report.data_hash
    assert len(report.data_hash) == 64
    assert meta["n_rows"] == report.n_rows == 60
    assert meta["label_counts"] == {"queue": {"billing": 20, "tech": 20, "sales": 20}}
    assert sorted(meta["output"]["queue"]) == ["billing", "sales", "tech"]
    assert meta["holdout"]["queue"]["accuracy"] == report.holdout_accuracy["queue"]
    assert meta["created_at"].endswith("+00:00")
    assert meta["sklearn_version"]


def test_latest_points_at_the_new_artifact(report: TrainReport, settings: Settings) -> None:
    assert latest_artifact(settings, "routing") == report.sha256


def test_no_artifact_before_training(settings: Settings) -> None:
    assert latest_artifact(settings, "routing") is None


def test_held_out_scores_are_high_on_separable_data(report: TrainReport) -> None:
    assert report.n_holdout == 12  # 20% of 60, stratified
    assert 0.9 <= report.holdout_accuracy["queue"] <= 1.0
    assert 0.9 <= report.holdout_macro_f1["queue"] <= 1.0
    assert report.holdout["queue"].accuracy == report.holdout_accuracy["queue"]
    assert report.duration_s > 0


def test_enum_values_without_examples_are_reported(report: TrainReport) -> None:
    assert report.unseen_labels == {"queue": ("other",)}


def test_the_data_hash_depends_on_the_rows_not_the_file(settings: Settings, tmp_path: Path) -> None:
    rows = make_rows()
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text(
        "".join(json.dumps({**r, "id": i, "note": "x"}) + "\n" for i, r in enumerate(rows))
    )
    from_csv = train_classifier(make_task(), write_csv(tmp_path / "a.csv", rows), settings)
    from_jsonl = train_classifier(make_task(), jsonl, settings)
    from_records = train_classifier(make_task(), list(iter_records(jsonl)), settings)
    assert from_csv.data_hash == from_jsonl.data_hash == from_records.data_hash
    changed = train_classifier(make_task(), write_csv(tmp_path / "b.csv", rows[1:]), settings)
    assert changed.data_hash != from_csv.data_hash


def test_every_bad_line_is_reported_at_once(settings: Settings, tmp_path: Path) -> None:
    rows = make_rows()
    rows[1]["queue"] = "refundz"  # file line 3
    rows[4]["queue"] = "sale"  # file line 6
    path = write_csv(tmp_path / "bad.csv", rows)
    lines = path.read_text().splitlines()
    lines[7] = "Crash,server error"  # file line 8: no queue cell
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as caught:
        train_classifier(make_task(), path, settings)
    message = str(caught.value)
    assert "2 records with a 'queue' label that is not a value of output.queue" in message
    assert "line 3 ('refundz'), line 6 ('sale')" in message
    assert "expected one of billing, tech, sales, other" in message
    assert "1 record with no 'queue' label: line 8" in message
    assert latest_artifact(settings, "routing") is None


def test_a_missing_column_is_reported_with_a_count(settings: Settings, tmp_path: Path) -> None:
    rows = [{"subject": r["subject"], "queue": r["queue"]} for r in make_rows()]
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ConfigError) as caught:
        train_classifier(make_task(), jsonl, settings)
    message = str(caught.value)
    assert "60 records with no 'body' value" in message
    assert "line 1, line 2, line 3, line 4, line 5 and 55 more" in message


def test_an_optional_input_field_may_be_missing(settings: Settings, tmp_path: Path) -> None:
    task = parse_task(
        {
            "name": "routing",
            "input": {"body": {"type": "string"}, "subject": {"type": "string", "required": False}},
            "output": {"queue": {"type": "enum", "values": list(VOCABULARY)}},
            "models": [{"provider": "local-classifier"}],
        },
        "tasks/routing.yaml",
    )
    rows = [{"body": r["body"], "queue": r["queue"]} for r in make_rows()]
    assert train_classifier(task, write_csv(tmp_path / "t.csv", rows), settings).n_rows == 60


def test_a_non_enum_output_field_is_refused(settings: Settings, tmp_path: Path) -> None:
    task = make_task(
        {"queue": {"type": "enum", "values": list(VOCABULARY)}, "note": {"type": "string"}}
    )
    with pytest.raises(
        ConfigError, match=r"output\.note is of type string; the local classifier only handles enum"
    ):
        train_classifier(task, write_csv(tmp_path / "t.csv", make_rows()), settings)


def test_too_few_rows_are_refused(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="9 labeled records; training needs at least 10"):
        train_classifier(make_task(), write_csv(tmp_path / "t.csv", make_rows(3)), settings)


def test_a_single_label_is_refused(settings: Settings, tmp_path: Path) -> None:
    rows = [r for r in make_rows() if r["queue"] == "tech"]
    with pytest.raises(ConfigError, match=r"every record has the same 'queue' label \('tech'\)"):
        train_classifier(make_task(), write_csv(tmp_path / "t.csv", rows), settings)


def test_a_rare_label_still_trains(settings: Settings, tmp_path: Path) -> None:
    rows = [r for r in make_rows() if r["queue"] != "sales"] + make_rows(1)[2:3]
    report = train_classifier(make_task(), write_csv(tmp_path / "t.csv", rows), settings)
    assert report.unseen_labels == {"queue": ("other",)}
    assert 0.0 <= report.holdout_accuracy["queue"] <= 1.0


def test_a_tampered_artifact_is_refused(report: TrainReport, settings: Settings) -> None:
    with report.path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ConfigError, match="modified after training") as caught:
        load_artifact(settings, "routing", report.sha256)
    assert "lockgate train routing" in str(caught.value)


def test_a_verified_artifact_loads(report: TrainReport, settings: Settings) -> None:
    model = load_artifact(settings, "routing", report.sha256)
    assert model.task_name == "routing"
    assert model.input_fields == ("subject", "body")


@pytest.mark.parametrize(
    "sha",
    [pytest.param("0" * 64, id="unknown"), pytest.param("../../etc/passwd", id="not-a-hash")],
)
def test_an_unknown_artifact_is_a_clear_error(settings: Settings, sha: str) -> None:
    with pytest.raises(ConfigError):
        load_artifact(settings, "routing", sha)


def test_a_corrupt_latest_pointer_is_a_clear_error(settings: Settings) -> None:
    folder = artifact_folder(settings, "routing")
    folder.mkdir(parents=True)
    (folder / "latest.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a valid pointer"):
        latest_artifact(settings, "routing")


def test_no_temporary_files_are_left_behind(report: TrainReport) -> None:
    names = sorted(p.name for p in report.path.parent.iterdir())
    assert names == sorted([f"{report.sha256}.joblib", f"{report.sha256}.json", "latest.json"])


def test_an_artifact_that_cannot_be_unpickled_is_a_clear_error(settings: Settings) -> None:
    data = b"not a joblib file"
    sha = hashlib.sha256(data).hexdigest()
    folder = artifact_folder(settings, "routing")
    folder.mkdir(parents=True)
    (folder / f"{sha}.joblib").write_bytes(data)
    with pytest.raises(ConfigError, match="cannot load the artifact"):
        load_artifact(settings, "routing", sha)


def test_an_artifact_of_another_task_is_refused(report: TrainReport, settings: Settings) -> None:
    other = artifact_folder(settings, "other")
    other.mkdir(parents=True)
    (other / report.path.name).write_bytes(report.path.read_bytes())
    with pytest.raises(ConfigError, match="not a local classifier of task 'other'"):
        load_artifact(settings, "other", report.sha256)


def test_an_artifact_written_by_joblib_before_the_format_changed_still_loads(
    report: TrainReport, settings: Settings
) -> None:
    """Artifacts trained before 2026-11-29 are joblib files (`joblib.dump(model, compress=3)`);
    releases pin them by hash, so they must keep loading, with the same predictions."""
    current = load_artifact(settings, "routing", report.sha256)
    assert report.path.read_bytes().startswith(ARTIFACT_HEADER)
    buffer = io.BytesIO()
    joblib.dump(current, buffer, compress=3)
    data = buffer.getvalue()
    assert not data.startswith(ARTIFACT_HEADER)
    sha = hashlib.sha256(data).hexdigest()
    (artifact_folder(settings, "routing") / f"{sha}.joblib").write_bytes(data)

    old = load_artifact(settings, "routing", sha)

    texts = ["I was charged twice, refund please", "the server shows an error at login"]
    assert old.classes("queue") == current.classes("queue")
    for name, probabilities in old.predict_proba(texts).items():
        assert probabilities.tolist() == current.predict_proba(texts)[name].tolist()
