"""Task files: one YAML file per task under a project's `tasks/` folder.

Loading reports every problem at once, each as `tasks/NAME.yaml: field.path: what is expected`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lockgate.decide.alert_rules import AlertRuleSpec
from lockgate.decide.key_paths import closest_key, key_path
from lockgate.decide.limits import BudgetSpec, CacheSpec
from lockgate.decide.retention import RetentionSpec
from lockgate.decide.sources import SourceSpec, check_source_kinds, source_problems
from lockgate.decide.yaml_loader import load_yaml
from lockgate.errors import ConfigError, TaskFileError

NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputField(_Strict):
    type: Literal["string", "number", "integer", "boolean"] = "string"
    required: bool = True
    max_length: int | None = Field(default=None, gt=0)
    pii: bool = False
    description: str = ""


class MetadataField(_Strict):
    """A metadata field the task knows of. Metadata is stored, not decided on: undeclared
    fields are kept too; declaring one says how to show it."""

    pii: bool = False
    description: str = ""


class OutputField(_Strict):
    type: Literal["string", "number", "boolean", "enum"]
    values: tuple[str, ...] | None = None
    values_file: str | None = None
    description: str = ""
    minimum: float | None = None
    maximum: float | None = None

    @field_validator("values")
    @classmethod
    def _enough_distinct_values(cls, values: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if values is None:
            return None
        if len(values) < 2:
            raise ValueError("must list at least 2 values")
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"lists {', '.join(duplicates)} more than once")
        if "__out_of_scope__" in values:
            raise ValueError(
                "__out_of_scope__ is reserved: it labels dataset rows that belong to none of "
                "the values"
            )
        return values

    @model_validator(mode="after")
    def _values_only_for_enums(self) -> OutputField:
        if self.type == "enum" and self.values is None and self.values_file is None:
            raise ValueError("an enum needs `values: [a, b, ...]` or `values_file: FILE`")
        if self.type != "enum" and (self.values is not None or self.values_file is not None):
            raise ValueError(f"`values` only applies to enums, not to type {self.type}")
        return self


class Condition(_Strict):
    """A test on an output field (`field`) or an input field (`input`)."""

    field: str | None = None
    input: str | None = None
    equals: Any = None
    in_: tuple[Any, ...] | None = Field(default=None, alias="in")
    matches: str | None = None
    empty: bool | None = None
    above: float | None = None
    below: float | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("matches")
    @classmethod
    def _regex_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            _check_regex(pattern)
        return pattern

    @model_validator(mode="after")
    def _one_subject_one_test(self) -> Condition:
        if (self.field is None) == (self.input is None):
            raise ValueError("name exactly one of `field` (an output field) or `input`")
        tests = [
            k
            for k in ("equals", "in_", "matches", "empty", "above", "below")
            if getattr(self, k) is not None
        ]
        if not tests:
            raise ValueError("needs a test: equals, in, matches, empty, above or below")
        return self

    def holds(self, value: Any) -> bool:
        if self.equals is not None and value != self.equals:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        if self.matches is not None and not (
            isinstance(value, str) and re.search(self.matches, value)
        ):
            return False
        if self.empty is not None and _is_empty(value) != self.empty:
            return False
        if self.above is not None and not (_is_number(value) and value > self.above):
            return False
        return not (self.below is not None and not (_is_number(value) and value < self.below))


class PriorityRule(Condition):
    """A condition and the review-queue priority it gives a pending decision (higher first)."""

    priority: int = Field(ge=-1000, le=1000)


class PolicySpec(_Strict):
    auto_min_confidence: float = Field(default=0.8, ge=0.0, le=1.0)
    review_when: tuple[Condition, ...] = ()
    reject_when: tuple[Condition, ...] = ()
    on_failure: Literal["fail", "review"] = "fail"
    """What happens when every model in the chain fails: a `failed` decision, or human review."""
    mode: Literal["gated", "suggest"] = "gated"
    two_person_when: tuple[Condition, ...] = ()
    """Outcomes (or inputs) that need approvals by two different reviewers to become final."""
    priority_when: tuple[PriorityRule, ...] = ()
    """A pending decision's queue priority: the highest of the rules that hold, else 0."""
    review_sla_minutes: float | None = Field(default=None, gt=0)
    """An item pending longer than this is escalated (priority raised, event emitted)."""
    out_of_scope: Literal["review", "reject"] | None = None
    """Where an input that the model judges out of scope goes (the embedding classifier's
    similarity check, or a combined chain of such models): `review` (also when unset) or
    `reject`. It is never automated."""
    spot_check_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """The share of automated decisions also sent to a person after delivery (a spot check),
    to measure live accuracy; it never delays or changes a delivery."""


class ModelSpec(BaseModel):
    """One entry of the model chain; provider-specific keys are kept and passed to the provider."""

    model_config = ConfigDict(extra="allow", frozen=True)

    provider: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$")
    model: str | None = None
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    retries: int = Field(default=2, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0, le=60)
    """First retry delay; doubles on each retry, with full jitter."""
    breaker_failures: int = Field(default=5, ge=1, le=1000)
    """Consecutive failures that open the circuit breaker for this endpoint."""
    breaker_cooldown_s: float = Field(default=30.0, ge=0, le=3600)

    def option(self, key: str, default: Any = None) -> Any:
        return (self.model_extra or {}).get(key, default)

    @property
    def label(self) -> str:
        return f"{self.provider}:{self.model}" if self.model else self.provider


OUT_OF_SCOPE = "__out_of_scope__"
"""The reserved label of a dataset row whose true answer is none of an enum's values."""

SINK_KINDS = ("webhook", "file", "python")


class SinkSpecBase(_Strict):
    """What every `deliver:` entry has: its kind and how often a delivery is tried."""

    sink: str
    max_tries: int | None = Field(default=None, ge=1, le=100)
    """Tries before a row is dead-lettered; None: the `delivery_max_tries` setting."""


class WebhookSinkSpec(SinkSpecBase):
    """POST the decision as signed JSON to `url`."""

    sink: Literal["webhook"]
    url: str
    secret_env: str
    """The environment variable holding the signing secret (never the secret itself)."""
    timeout_s: float = Field(default=10.0, gt=0, le=300)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s?#]+(?:[/?#]\S*)?$", url):
            raise ValueError("must be an http:// or https:// URL with a host")
        return url

    @field_validator("secret_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise ValueError(
                "must be the name of an environment variable (e.g. ROUTING_HOOK_SECRET), "
                "not the secret itself"
            )
        return name


class FileSinkSpec(SinkSpecBase):
    """Append one JSON line per decision to `path` (relative to the project folder)."""

    sink: Literal["file"]
    path: str = Field(min_length=1)

    @field_validator("path")
    @classmethod
    def _relative_path(cls, path: str) -> str:
        if Path(path).is_absolute() or ".." in Path(path).parts:
            raise ValueError("must be a path inside the project folder, e.g. out/decisions.jsonl")
        return path


class PythonSinkSpec(SinkSpecBase):
    """Call `callable` ("package.module:function") with the decision."""

    sink: Literal["python"]
    callable: str

    @field_validator("callable")
    @classmethod
    def _import_path(cls, path: str) -> str:
        if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$", path):
            raise ValueError('must be an import path like "package.module:function"')
        return path


SinkSpec = Annotated[WebhookSinkSpec | FileSinkSpec | PythonSinkSpec, Field(discriminator="sink")]


class NonInferioritySpec(_Strict):
    """The candidate may be worse than the live release on `metric` by at most `margin`."""

    metric: Literal["accuracy", "macro_f1", "auto_accuracy", "coverage"] = "accuracy"
    margin: float = Field(default=0.01, ge=0.0, le=1.0)


class GateSpec(_Strict):
    """What a release's eval on the gate dataset must show before it may be promoted."""

    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    min_auto_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    max_cost_per_decision: float | None = Field(default=None, ge=0.0)
    max_latency_p95_ms: float | None = Field(default=None, gt=0.0)
    min_oos_caught: float | None = Field(default=None, ge=0.0, le=1.0)
    """Share of the gate dataset's out-of-scope rows (expected `__out_of_scope__`) that must
    not be automated."""
    non_inferior_to_live: NonInferioritySpec | None = None


class RolloutSpec(_Strict):
    """Limits past which a canary release is rolled back by itself."""

    canary_max_failure_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    canary_max_override_rate: float = Field(default=0.2, ge=0.0, le=1.0)
    canary_min_decisions: int = Field(default=50, ge=1)
    canary_min_reviews: int = Field(default=10, ge=1)


class EvaluationSpec(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    gate_dataset: str | None = None
    gate: GateSpec | None = None
    """Promotion gate; without one, `release promote` does not ask for an eval."""
    holdout_share: float = Field(default=0.2, gt=0, lt=1)
    calibration_dataset: str | None = None
    """The dataset `lockgate calibrate` tunes the threshold on (never the gate dataset)."""
    field: str | None = None
    """The output field `lockgate eval` scores; default: the first output field."""
    tolerance: Mapping[str, float] | None = None
    """Per number output field, the absolute difference that still counts as a match."""


class TaskSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    owner: str = ""
    input: Mapping[str, InputField]
    output: Mapping[str, OutputField]
    instructions: str = ""
    models: tuple[ModelSpec, ...] = Field(min_length=1)
    policy: PolicySpec = Field(default_factory=PolicySpec)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    deliver: tuple[SinkSpec, ...] = ()
    rollout: RolloutSpec | None = None
    """Canary limits; None means the defaults of `RolloutSpec`."""
    metadata: Mapping[str, MetadataField] | None = None
    """Metadata fields with display rules (`pii: true`); None (not {}) keeps the content hash
    of tasks that declare none as it was."""
    sources: tuple[SourceSpec, ...] = ()
    """Where records come from, read by `lockgate.intake`; not part of a release's content."""
    retention: RetentionSpec | None = None
    """How long inputs, outputs and attempts are kept (`decide.retention`); None: for ever.
    Not part of a release's content: `lockgate retention run` reads the task file."""
    alerts: tuple[AlertRuleSpec, ...] = ()
    """Alert rules of this task (`lockgate.watch.alerts`); not part of a release's content."""
    budget: BudgetSpec | None = None
    """Spending limits per day and month (see `decide.limits`); None: no limits of its own."""
    cache: CacheSpec | None = None
    """Reuse an automated answer for the same input and release for `ttl`; None: no cache."""

    _source_kinds = field_validator("sources", mode="before")(check_source_kinds)

    @field_validator("deliver", mode="before")
    @classmethod
    def _known_sinks(cls, entries: Any) -> Any:
        for i, entry in enumerate(entries if isinstance(entries, list | tuple) else ()):
            kind = entry.get("sink") if isinstance(entry, Mapping) else None
            if kind not in SINK_KINDS:
                what = "has no `sink:` key" if kind is None else "names an unknown sink"
                raise ValueError(
                    f"entry {i} {what}; use `sink:` webhook, file or python, e.g. "
                    "{sink: file, path: out/decisions.jsonl}"
                )
        return entries

    @field_validator("input", "output")
    @classmethod
    def _at_least_one_field(cls, fields: Mapping[str, Any]) -> Mapping[str, Any]:
        if not fields:
            raise ValueError("declare at least one field")
        bad = [name for name in fields if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name)]
        if bad:
            raise ValueError(f"field names must be identifiers, not {', '.join(map(repr, bad))}")
        return fields

    @property
    def pii_fields(self) -> tuple[str, ...]:
        return tuple(name for name, f in self.input.items() if f.pii)

    @property
    def pii_metadata(self) -> tuple[str, ...]:
        return tuple(name for name, f in (self.metadata or {}).items() if f.pii)

    def enum_values(self, field_name: str) -> tuple[str, ...]:
        values = self.output[field_name].values
        if values is None:
            raise ConfigError(f"output.{field_name} is not an enum")
        return values

    def output_json_schema(self) -> dict[str, Any]:
        """The output schema as JSON Schema (used for structured output from LLMs)."""
        properties: dict[str, Any] = {}
        for name, f in self.output.items():
            prop: dict[str, Any]
            if f.type == "enum":
                prop = {"type": "string", "enum": list(f.values or ())}
            else:
                prop = {"type": f.type}
            if f.description:
                prop["description"] = f.description
            properties[name] = prop
        return {
            "type": "object",
            "properties": properties,
            "required": list(self.output),
            "additionalProperties": False,
        }


def _check_regex(pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None


def _is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# ---------------------------------------------------------------- loading


def parse_task(
    data: Any,
    source: str,
    *,
    base_dir: Path | None = None,
    known_providers: Iterable[str] | None = None,
) -> TaskSpec:
    """Validate a task mapping; raise `TaskFileError` listing every problem found."""
    if not isinstance(data, dict):
        raise TaskFileError(
            [f"{source}: the file must be a mapping of task keys (name, input, ...)"]
        )
    data = dict(data)
    problems: list[str] = []
    if base_dir is not None:
        _inline_values_files(data, base_dir, source, problems)
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A list whose items failed is also reported "too short" by pydantic; one line is enough.
        item_paths = {tuple(e["loc"][:i]) for e in errors for i in range(1, len(e["loc"]))}
        problems.extend(
            _describe(source, err)
            for err in errors
            if not (err["type"] == "too_short" and tuple(err["loc"]) in item_paths)
        )
        raise TaskFileError(problems) from None
    problems.extend(_cross_checks(spec, source, known_providers))
    if problems:
        raise TaskFileError(problems)
    return spec


def load_task(path: str | Path, *, known_providers: Iterable[str] | None = None) -> TaskSpec:
    path = Path(path)
    source = _display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such task file") from None
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise TaskFileError([f"{source}: not valid YAML{where}: {problem}"]) from None
    spec = parse_task(data, source, base_dir=path.parent.parent, known_providers=known_providers)
    if spec.name != path.stem:
        raise TaskFileError(
            [f"{source}: name: is {spec.name!r} but the file is {path.name}; rename one to match"]
        )
    return spec


def task_files(tasks_dir: Path) -> list[Path]:
    return sorted([*tasks_dir.glob("*.yaml"), *tasks_dir.glob("*.yml")])


def _display_path(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[-2:]) if len(parts) >= 2 else str(path)


def _inline_values_files(
    data: dict[str, Any], base_dir: Path, source: str, problems: list[str]
) -> None:
    """Replace `values_file: FILE` by the file's values (one per line; relative to the project)."""
    output = data.get("output")
    if not isinstance(output, dict):
        return
    output = data["output"] = {
        k: (dict(v) if isinstance(v, dict) else v) for k, v in output.items()
    }
    for name, f in output.items():
        if not isinstance(f, dict) or "values_file" not in f:
            continue
        file = base_dir / str(f["values_file"])
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except OSError:
            problems.append(
                f"{source}: output.{name}.values_file: cannot read {f['values_file']} "
                "(a path relative to the project folder, one value per line)"
            )
            continue
        f["values"] = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
        del f["values_file"]


def _describe(source: str, err: Any) -> str:
    loc, _ = key_path(TaskSpec, err["loc"])
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "missing":
        msg = "is required"
    elif kind == "extra_forbidden":
        closest, known = closest_key(TaskSpec, err["loc"])
        msg = (
            f"is not a known key; did you mean {closest}?"
            if closest is not None
            else f"is not a known key (known here: {', '.join(known)})"
        )
    elif kind in ("tuple_type", "list_type"):
        msg = "must be a list, e.g. [a, b]"
    elif kind == "string_type":
        msg = 'must be a string; write it in quotes if it is meant as text, e.g. "1"'
    elif kind == "literal_error":
        msg = "must be one of " + msg.split("Input should be ", 1)[-1]
    elif kind == "string_pattern_mismatch" and loc.endswith("name"):
        msg = "must be lower-case letters, digits, '-' or '_', starting with a letter"
    elif kind == "too_short" and loc == "models":
        msg = "must list at least one model"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    elif msg.startswith("Input should be"):
        msg = "must be" + msg.removeprefix("Input should be")
    return f"{source}: {loc or '(top level)'}: {msg}"


def _cross_checks(spec: TaskSpec, source: str, known_providers: Iterable[str] | None) -> list[str]:
    problems: list[str] = []
    known = set(known_providers) if known_providers is not None else None
    problems.extend(source_problems(spec.sources, spec.input, source))
    for i, model in enumerate(spec.models):
        if known is not None and model.provider not in known:
            problems.append(
                f"{source}: models.{i}.provider: unknown provider {model.provider!r}; "
                f"installed: {', '.join(sorted(known))}"
            )
    for group in ("review_when", "reject_when", "two_person_when", "priority_when"):
        for i, cond in enumerate(getattr(spec.policy, group)):
            if cond.field is not None and cond.field not in spec.output:
                problems.append(
                    f"{source}: policy.{group}.{i}.field: {cond.field!r} is not an output field "
                    f"(output fields: {', '.join(spec.output)})"
                )
            if cond.input is not None and cond.input not in spec.input:
                problems.append(
                    f"{source}: policy.{group}.{i}.input: {cond.input!r} is not an input field "
                    f"(input fields: {', '.join(spec.input)})"
                )
            if cond.field is not None and cond.field in spec.output:
                out = spec.output[cond.field]
                wanted = [cond.equals] if cond.equals is not None else list(cond.in_ or ())
                unknown = [v for v in wanted if out.values and v not in out.values]
                if unknown:
                    problems.append(
                        f"{source}: policy.{group}.{i}: {', '.join(map(str, unknown))} is not a "
                        f"value of output.{cond.field} ({', '.join(out.values or ())})"
                    )
    return problems


def load_tasks(
    tasks_dir: Path, *, known_providers: Iterable[str] | None = None
) -> dict[str, TaskSpec]:
    """Load every task of a project; problems of all files are reported together."""
    if not tasks_dir.is_dir():
        raise ConfigError(
            f"no tasks/ folder in {tasks_dir.parent}",
            hint="run `lockgate init DIR` to create a project, or pass --project DIR",
        )
    tasks: dict[str, TaskSpec] = {}
    problems: list[str] = []
    for path in task_files(tasks_dir):
        try:
            spec = load_task(path, known_providers=known_providers)
        except TaskFileError as exc:
            problems.extend(exc.problems)
            continue
        tasks[spec.name] = spec
    if problems:
        raise TaskFileError(problems)
    return tasks


def task_to_dict(spec: TaskSpec) -> dict[str, Any]:
    """A plain, canonical mapping of the task (enum values inlined), for hashing and storage."""
    # Sources say where records come from, not how the task decides: changing a mapping
    # needs no new release.
    # Retention says how long stored data is kept, not how the task decides either.
    return spec.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude={"sources", "retention", "alerts"}
    )


def dump_yaml(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True)


def sink_names(spec: TaskSpec) -> tuple[str, ...]:
    """The outbox names of a task's sinks: `"{index}:{kind}"`, one per `deliver:` entry."""
    return tuple(f"{i}:{sink.sink}" for i, sink in enumerate(spec.deliver))
