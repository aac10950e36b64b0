"""The llama-cpp provider on the real SmolLM2-135M-Instruct (from the `llm` extra): answers that
fit the output schema by grammar, a confidence from the token log-probabilities, a thread
setting, and a timeout or cancellation that stops generation within a token."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

pytest.importorskip("llama_cpp", reason="needs the llm extra (make test installs it)")

from lockgate.decide.task import ModelSpec, TaskSpec, parse_task
from lockgate.decide.validation import validate_output
from lockgate.errors import ConfigError
from lockgate.providers.base import PreparedRequest, ProviderError
from lockgate.providers.llama_cpp import KIND, LlamaCppProvider, LlamaSettings
from lockgate.providers.registry import ProviderRegistry
from tests.providers.model_texts import INTENTS, task_data

pytestmark = pytest.mark.slow

TEXTS = [
    "Someone stole my card on the train",
    "My new card still has not arrived",
    "What exchange rate do you use for dollars?",
]


@pytest.fixture(scope="module")
def task() -> TaskSpec:
    return parse_task(
        task_data([{"provider": KIND, "threads": 1, "n_ctx": 512, "max_tokens": 24}]),
        "tasks/banking.yaml",
    )


@pytest.fixture(scope="module")
def provider(task: TaskSpec) -> LlamaCppProvider:
    spec = task.models[0]
    return LlamaCppProvider(task, spec, LlamaSettings.parse(spec))


def test_it_is_found_through_the_entry_point() -> None:
    assert KIND in ProviderRegistry.discover().names()


def test_every_answer_fits_the_schema_with_a_confidence_from_log_probabilities(
    provider: LlamaCppProvider, task: TaskSpec
) -> None:
    for text in TEXTS:
        answer = asyncio.run(provider.complete(PreparedRequest(task, {"text": text})))
        output = validate_output(task, answer.output)  # the grammar: always a valid answer
        assert output["intent"] in INTENTS
        assert answer.confidence is not None and 0.0 < answer.confidence <= 1.0
        assert answer.alternatives == {"intent": [(output["intent"], answer.confidence)]}
        assert answer.usage.input_tokens > 0 and answer.usage.output_tokens > 0


def test_the_thread_setting_reaches_llama_cpp(provider: LlamaCppProvider) -> None:
    assert provider.settings.threads == 1
    assert provider._model.llama.context_params.n_threads == 1


def test_a_stop_ends_generation_within_a_token(task: TaskSpec) -> None:
    """A free-text answer of at least 400 characters (the grammar forces it) is stopped after
    its third token: the generation ends there, well short of max_tokens."""
    long_task = parse_task(
        {
            "name": "essay",
            "input": {"text": {"type": "string"}},
            "output": {"essay": {"type": "string"}},
            "models": [{"provider": KIND, "threads": 1, "n_ctx": 512, "max_tokens": 200}],
        },
        "tasks/essay.yaml",
    )
    spec = long_task.models[0]
    provider = LlamaCppProvider(long_task, spec, LlamaSettings.parse(spec))
    schema = long_task.output_json_schema()
    schema["properties"]["essay"]["minLength"] = 400
    provider._grammar_text = json.dumps(schema)
    stop = threading.Event()
    result = {}

    def run() -> None:
        request = PreparedRequest(long_task, {"text": "Write about the sea."})
        result["generation"] = provider.generate(request, stop, time.monotonic() + 600)

    worker = threading.Thread(target=run)
    worker.start()
    while provider.tokens_in_flight < 3 and worker.is_alive():
        time.sleep(0.01)
    stop.set()
    worker.join()
    generation = result["generation"]
    assert generation.stopped
    # Not finished: 400 characters take about 100 tokens.
    assert 3 <= provider.tokens_in_flight < 100
    assert not provider._model.lock.locked()


def test_a_cancelled_call_stops_its_generation(task: TaskSpec) -> None:
    long_task = parse_task(
        {
            "name": "essay",
            "input": {"text": {"type": "string"}},
            "output": {"essay": {"type": "string"}},
            "models": [{"provider": KIND, "threads": 1, "n_ctx": 512, "max_tokens": 200}],
        },
        "tasks/essay.yaml",
    )
    spec = long_task.models[0]
    provider = LlamaCppProvider(long_task, spec, LlamaSettings.parse(spec))
    schema = long_task.output_json_schema()
    schema["properties"]["essay"]["minLength"] = 400
    provider._grammar_text = json.dumps(schema)

    async def scenario() -> None:
        call = asyncio.create_task(
            provider.complete(PreparedRequest(long_task, {"text": "Write about the sea."}))
        )
        while provider.tokens_in_flight < 2:
            await asyncio.sleep(0.01)
        call.cancel()  # what the chain's asyncio.timeout does
        with pytest.raises(asyncio.CancelledError):
            await call
        while provider._model.lock.locked():  # the worker thread ends at the next token
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert provider.tokens_in_flight < 100


def test_a_past_deadline_is_a_timeout_error(provider: LlamaCppProvider, task: TaskSpec) -> None:
    stop = threading.Event()
    generation = provider.generate(PreparedRequest(task, {"text": "hello"}), stop, 0.0)
    assert generation.stopped and generation.tokens == []
    spec = task.models[0].model_copy(update={"timeout_s": 1e-9})
    quick = LlamaCppProvider(task, spec, provider.settings)
    with pytest.raises(ProviderError) as caught:
        asyncio.run(quick.complete(PreparedRequest(task, {"text": "hello"})))
    assert caught.value.error_class == "timeout" and caught.value.retryable


def test_a_missing_model_file_is_a_clear_error(task: TaskSpec) -> None:
    spec = ModelSpec(provider=KIND, model_path="/nonexistent/model.gguf")
    with pytest.raises(ConfigError, match="no such GGUF file"):
        LlamaSettings.parse(spec)
