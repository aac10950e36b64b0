"""Task files: the documented example loads as it is; mistakes are all reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from lockgate.decide.task import load_task, load_tasks
from lockgate.demo.scaffold import EXAMPLE_TASK
from lockgate.errors import TaskFileError

ISSUE_EXAMPLE = """\
name: routing
description: Route a customer message to the queue that can resolve it
owner: support-platform
input:
  text: {type: string, max_length: 4000, pii: true}
output:
  queue: {type: enum, values: [cards, payments, fraud, other]}
instructions: |
  Route the customer's message to the queue that can resolve it.
models:
  - provider: local-classifier
  - provider: rules
    rules:
      - {if_matches: "(?i)stolen|fraud", then: {queue: fraud}}
policy:
  auto_min_confidence: 0.8
  review_when:
    - {field: queue, equals: fraud}
"""

PROVIDERS = ["local-classifier", "rules", "openai", "deterministic"]


def write(tmp_path: Path, name: str, text: str) -> Path:
    (tmp_path / "tasks").mkdir(exist_ok=True)
    path = tmp_path / "tasks" / f"{name}.yaml"
    path.write_text(text)
    return path


def test_the_documented_example_loads_with_the_meaning_it_states(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, "routing", ISSUE_EXAMPLE), known_providers=PROVIDERS)
    assert spec.input["text"].pii is True
    assert spec.input["text"].max_length == 4000
    assert spec.output["queue"].values == ("cards", "payments", "fraud", "other")
    assert [m.provider for m in spec.models] == ["local-classifier", "rules"]
    assert spec.models[1].option("rules")[0]["then"] == {"queue": "fraud"}
    assert spec.policy.auto_min_confidence == 0.8
    assert spec.policy.review_when[0].field == "queue"
    assert spec.policy.review_when[0].equals == "fraud"


def test_the_scaffolded_example_task_loads(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, "routing", EXAMPLE_TASK), known_providers=PROVIDERS)
    assert spec.policy.reject_when[0].input == "text"


def test_a_file_with_several_mistakes_gets_one_error_listing_each(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "routing",
        """\
name: routing
input:
  text: {type: strng}
output:
  queue: {type: enum, values: [cards]}
  score: {type: number, values: [a, b]}
models:
  - provider: local-classifier
    timeout_s: -1
polcy: {}
""",
    )
    with pytest.raises(TaskFileError) as caught:
        load_task(path, known_providers=PROVIDERS)
    problems = caught.value.problems
    assert "tasks/routing.yaml: output.queue.values: must list at least 2 values" in problems
    assert any(
        p.startswith("tasks/routing.yaml: input.text.type: must be one of") for p in problems
    )
    assert any(p.startswith("tasks/routing.yaml: output.score:") and "enum" in p for p in problems)
    assert any(p.startswith("tasks/routing.yaml: models.0.timeout_s:") for p in problems)
    assert "tasks/routing.yaml: polcy: is not a known key; did you mean policy?" in problems
    assert len(problems) == 5


def test_cross_field_mistakes_are_reported_together(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "routing",
        ISSUE_EXAMPLE.replace("provider: rules", "provider: rulez").replace(
            "{field: queue, equals: fraud}", "{field: queue, equals: frauds}"
        )
        + "  reject_when:\n    - {input: body, empty: true}\n",
    )
    with pytest.raises(TaskFileError) as caught:
        load_task(path, known_providers=PROVIDERS)
    text = str(caught.value)
    assert "models.1.provider: unknown provider 'rulez'" in text
    assert "policy.review_when.0: frauds is not a value of output.queue" in text
    assert "policy.reject_when.0.input: 'body' is not an input field" in text


def test_enum_values_can_come_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "queues.txt").write_text("# queues\ncards\npayments\n\nfraud\n")
    path = write(
        tmp_path,
        "routing",
        ISSUE_EXAMPLE.replace(
            "{type: enum, values: [cards, payments, fraud, other]}",
            "{type: enum, values_file: data/queues.txt}",
        ),
    )
    assert load_task(path).output["queue"].values == ("cards", "payments", "fraud")


def test_a_missing_values_file_is_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "routing",
        ISSUE_EXAMPLE.replace(
            "{type: enum, values: [cards, payments, fraud, other]}",
            "{type: enum, values_file: data/nope.txt}",
        ),
    )
    with pytest.raises(TaskFileError, match=r"output\.queue\.values_file: cannot read"):
        load_task(path)


def test_the_task_name_must_match_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, "other", ISSUE_EXAMPLE)
    with pytest.raises(TaskFileError, match="rename one to match"):
        load_task(path)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "routing", "name: routing\ninput: [unclosed\n")
    with pytest.raises(TaskFileError, match=r"not valid YAML \(line \d+"):
        load_task(path)


def test_problems_of_all_task_files_are_reported_together(tmp_path: Path) -> None:
    write(tmp_path, "a", "name: a\n")
    write(tmp_path, "b", "name: b\n")
    with pytest.raises(TaskFileError) as caught:
        load_tasks(tmp_path / "tasks")
    files = {p.split(":")[0] for p in caught.value.problems}
    assert files == {"tasks/a.yaml", "tasks/b.yaml"}


def test_output_schema_becomes_json_schema(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, "routing", ISSUE_EXAMPLE))
    schema = spec.output_json_schema()
    assert schema["properties"]["queue"]["enum"] == ["cards", "payments", "fraud", "other"]
    assert schema["required"] == ["queue"]
    assert schema["additionalProperties"] is False


def test_metadata_fields_may_be_marked_personal(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE + "metadata:\n  customer: {pii: true}\n  ticket: {description: CRM id}\n"
    spec = load_task(write(tmp_path, "routing", text), known_providers=PROVIDERS)
    assert spec.pii_metadata == ("customer",)


def test_a_task_without_metadata_declares_no_personal_metadata(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, "routing", ISSUE_EXAMPLE), known_providers=PROVIDERS)
    assert spec.metadata is None
    assert spec.pii_metadata == ()


def test_an_unknown_metadata_field_key_is_reported(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE + "metadata:\n  customer: {personal: true}\n"
    with pytest.raises(TaskFileError, match=r"metadata\.customer\.personal"):
        load_task(write(tmp_path, "routing", text), known_providers=PROVIDERS)


SPAM = """\
name: spam
input:
  text: {type: string, required: yes, pii: on}
output:
  spam: {type: enum, values: [yes, no]}
  code: {type: enum, values: [1:30, 2026-01-02]}
models:
  - provider: rules
    rules:
      - {if_matches: "(?i)winner", then: {spam: yes, code: 1:30}}
    default: {spam: no, code: 2026-01-02}
policy:
  review_when:
    - {field: spam, equals: yes}
    - {input: text, empty: off}
"""


def test_yes_no_on_off_stay_words_where_text_is_expected(tmp_path: Path) -> None:
    spec = load_task(write(tmp_path, "spam", SPAM), known_providers=PROVIDERS)
    assert spec.output["spam"].values == ("yes", "no")
    assert spec.output["code"].values == ("1:30", "2026-01-02")  # not 90 and a date (YAML 1.1)
    assert spec.models[0].option("rules")[0]["then"] == {"spam": "yes", "code": "1:30"}
    assert spec.models[0].option("default") == {"spam": "no", "code": "2026-01-02"}
    assert spec.policy.review_when[0].equals == "yes"
    # Where a boolean is expected, the words still mean true and false.
    assert spec.input["text"].required is True
    assert spec.input["text"].pii is True
    assert spec.policy.review_when[1].empty is False


@pytest.mark.parametrize(
    ("policy", "problem"),
    [
        pytest.param(
            "  auto_min_confidnce: 0.9\n",
            "policy.auto_min_confidnce: is not a known key; did you mean auto_min_confidence?",
            id="typo-containing-in_",
        ),
        pytest.param(
            "  auto_minconfidence: 0.9\n",
            "policy.auto_minconfidence: is not a known key; did you mean auto_min_confidence?",
            id="missing-underscore",
        ),
        pytest.param(
            "  review_when:\n    - {field: queue, in: [fraud], equls: fraud}\n",
            "policy.review_when.0.equls: is not a known key; did you mean equals?",
            id="nested-in-a-list",
        ),
        pytest.param(
            "  review_when:\n    - {field: queue, in: fraud}\n",
            "policy.review_when.0.in: must be a list, e.g. [a, b]",
            id="alias-shown-as-written",
        ),
        pytest.param(
            "  zzz: 1\n",
            "policy.zzz: is not a known key (known here: auto_min_confidence, review_when,",
            id="nothing-close",
        ),
    ],
)
def test_keys_are_shown_as_written_with_the_closest_known_key(
    tmp_path: Path, policy: str, problem: str
) -> None:
    text = ISSUE_EXAMPLE.split("policy:\n")[0] + "policy:\n" + policy
    with pytest.raises(TaskFileError) as caught:
        load_task(write(tmp_path, "routing", text), known_providers=PROVIDERS)
    assert any(p.startswith(f"tasks/routing.yaml: {problem}") for p in caught.value.problems), (
        caught.value.problems
    )


def test_a_sink_key_is_shown_without_the_sink_kind_pydantic_adds(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE + "deliver:\n  - {sink: file, pathh: out/d.jsonl}\n"
    with pytest.raises(TaskFileError) as caught:
        load_task(write(tmp_path, "routing", text), known_providers=PROVIDERS)
    assert "tasks/routing.yaml: deliver.0.pathh: is not a known key; did you mean path?" in (
        caught.value.problems
    )


def test_a_number_where_text_is_expected_says_to_quote_it(tmp_path: Path) -> None:
    text = ISSUE_EXAMPLE.replace("[cards, payments, fraud, other]", "[1, 2]")
    with pytest.raises(TaskFileError) as caught:
        load_task(write(tmp_path, "routing", text), known_providers=PROVIDERS)
    assert (
        "tasks/routing.yaml: output.queue.values.0: must be a string; write it in quotes if it "
        'is meant as text, e.g. "1"'
    ) in caught.value.problems
