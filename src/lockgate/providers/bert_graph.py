"""A float32 ONNX graph of a BERT encoder, built from its weights by our own code.

The graph takes `input_ids` and `attention_mask` (int64, batch x tokens) and returns the last
hidden state (float32, batch x tokens x hidden), the interface `embeddings.Encoder` runs. The
weights are a mapping in the naming of Hugging Face's `BertModel` (`embeddings.word_embeddings.
weight`, `encoder.layer.0.attention.self.query.weight`, ...), such as a sentence-transformers
`model.safetensors` or the state of a model fine-tuned by `encoder_tuning`. Token types are
always 0 (one segment), so the first token-type row is folded into the position table, and the
attention scale into the query weights.

MPNet's weights (all-mpnet-base-v2) are read into the same graph by `from_mpnet`: the same
layers under other names, no token types, positions counted from 2, a LayerNorm epsilon of 1e-5,
and a bias per attention head by the distance between two tokens (bucketed as in T5), which is
added to every layer's attention scores.

Building needs the `onnx` package (in the `tune` extra); running the result needs only
ONNX Runtime.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lockgate.errors import ConfigError

OPSET = 17
LAYER_NORM_EPS = 1e-12


def layer_count(weights: Mapping[str, np.ndarray]) -> int:
    """How many transformer layers the weights hold."""
    count = 0
    while f"encoder.layer.{count}.attention.self.query.weight" in weights:
        count += 1
    return count


@dataclass(frozen=True)
class EncoderWeights:
    """An encoder's weights in BertModel's naming, and what sets it apart from BERT."""

    weights: Mapping[str, np.ndarray]
    heads: int
    layer_norm_eps: float = LAYER_NORM_EPS
    relative_bias: np.ndarray | None = None
    """(heads, tokens, tokens): added to the attention scores of every layer (MPNet)."""


_MPNET_NAMES = {
    "attention.attn.q.": "attention.self.query.",
    "attention.attn.k.": "attention.self.key.",
    "attention.attn.v.": "attention.self.value.",
    "attention.attn.o.": "attention.output.dense.",
    "attention.LayerNorm.": "attention.output.LayerNorm.",
}
MPNET_POSITION_OFFSET = 2  # MPNet numbers positions from its padding index (1) plus one


def from_mpnet(weights: Mapping[str, np.ndarray], *, heads: int, tokens: int) -> EncoderWeights:
    """MPNet's weights (Hugging Face's `MPNetModel` naming) as a BERT graph builds them, with
    the relative-position bias precomputed for up to `tokens` tokens."""
    table = weights.get("encoder.relative_attention_bias.weight")
    if table is None:
        raise ConfigError("these weights are not an MPNet encoder (no relative attention bias)")
    renamed: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        for old, new in _MPNET_NAMES.items():
            key = key.replace(old, new)
        renamed[key] = value
    positions = np.asarray(weights["embeddings.position_embeddings.weight"])
    renamed["embeddings.position_embeddings.weight"] = positions[MPNET_POSITION_OFFSET:]
    buckets = relative_buckets(tokens, int(table.shape[0]))
    bias = np.asarray(table, np.float32)[buckets].transpose(2, 0, 1)  # (heads, query, key)
    return EncoderWeights(renamed, heads, 1e-5, np.ascontiguousarray(bias))


def relative_buckets(tokens: int, buckets: int, max_distance: int = 128) -> np.ndarray:
    """(tokens, tokens) bucket of each key's offset from each query: half the buckets for keys
    before the query, half for keys after; distances below a quarter of the buckets each have
    their own, longer ones share buckets spaced by the logarithm of the distance."""
    offset = np.arange(tokens)[None, :] - np.arange(tokens)[:, None]  # key - query
    half = buckets // 2
    out = np.where(offset > 0, half, 0)
    distance = np.abs(offset)
    exact = half // 2
    far = exact + (
        np.log(np.maximum(distance, 1) / exact) / math.log(max_distance / exact) * (half - exact)
    ).astype(np.int64)
    return np.asarray(out + np.where(distance < exact, distance, np.minimum(far, half - 1)))


def build_bert_onnx(encoder: EncoderWeights) -> bytes:
    """The serialised ONNX model of the encoder the weights describe."""
    weights, heads = encoder.weights, encoder.heads
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ConfigError(
            "building the encoder's ONNX graph needs the onnx package",
            hint="install the tuning extra: pip install 'lockgate[tune]'",
        ) from None
    layers = layer_count(weights)
    if layers == 0 or "embeddings.word_embeddings.weight" not in weights:
        raise ConfigError("these weights are not a BERT encoder (no layers or no embeddings)")
    hidden = int(weights["embeddings.word_embeddings.weight"].shape[1])
    if hidden % heads:
        raise ConfigError(f"hidden size {hidden} is not a multiple of {heads} attention heads")
    head_size = hidden // heads
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def weight(key: str) -> np.ndarray:
        return np.asarray(weights[key], dtype=np.float32)

    def node(op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def linear(x: str, key: str, out: str, scale: float = 1.0) -> str:
        # torch's Linear keeps (out, in); MatMul wants (in, out)
        w = const(f"{out}.w", (weight(key + ".weight").T * scale).astype(np.float32))
        b = const(f"{out}.b", (weight(key + ".bias") * scale).astype(np.float32))
        return node("Add", [node("MatMul", [x, w], f"{out}.mm"), b], out)

    def layer_norm(x: str, key: str, out: str) -> str:
        g, b = const(f"{out}.g", weight(key + ".weight")), const(f"{out}.b", weight(key + ".bias"))
        return node("LayerNormalization", [x, g, b], out, axis=-1, epsilon=encoder.layer_norm_eps)

    # embeddings: word + (position + token type 0), then LayerNorm
    word = node(
        "Gather", [const("word", weight("embeddings.word_embeddings.weight")), "input_ids"], "e.w"
    )
    positions = weight("embeddings.position_embeddings.weight")
    if "embeddings.token_type_embeddings.weight" in weights:
        positions = positions + weight("embeddings.token_type_embeddings.weight")[0]
    shape = node("Shape", ["input_ids"], "e.shape")
    width = node("Gather", [shape, const("one", np.array([1], np.int64))], "e.width")
    zero = const("zero", np.array([0], np.int64))
    pos = node("Slice", [const("positions", positions), zero, width, zero], "e.pos")
    x = layer_norm(node("Add", [word, pos], "e.sum"), "embeddings.LayerNorm", "e.ln")

    # attention mask: 0 for real tokens, -10000 for padding, shaped (batch, 1, 1, tokens)
    mask = node("Cast", ["attention_mask"], "m.float", to=TensorProto.FLOAT)
    mask = node("Sub", [mask, const("m.one", np.array(1.0, np.float32))], "m.neg")
    mask = node("Mul", [mask, const("m.big", np.array(10000.0, np.float32))], "m.scaled")
    mask = node("Unsqueeze", [mask, const("m.axes", np.array([1, 2], np.int64))], "m.bias")
    if encoder.relative_bias is not None:  # (heads, tokens, tokens), cut to this batch's width
        axes = const("r.axes", np.array([1, 2], np.int64))
        widths = node("Concat", [width, width], "r.widths", axis=0)
        table = const("relative", encoder.relative_bias.astype(np.float32))
        start = const("r.zero", np.array([0, 0], np.int64))
        cut = node("Slice", [table, start, widths, axes], "r.cut")
        mask = node("Add", [mask, cut], "m.relative")

    split_heads = const("split", np.array([0, 0, heads, head_size], np.int64))
    merge_heads = const("merge", np.array([0, 0, hidden], np.int64))
    scale = 1.0 / math.sqrt(head_size)
    half = const("half", np.array(0.5, np.float32))
    root2 = const("r2", np.array(math.sqrt(2.0), np.float32))
    one = const("onef", np.array(1.0, np.float32))
    for i in range(layers):
        p, n = f"encoder.layer.{i}.", f"l{i}"

        def heads_of(name: str, key: str, perm: list[int], s: float = 1.0) -> str:
            projected = linear(x, p + key, f"{n}.{name}", s)  # noqa: B023 (used at once)
            shaped = node("Reshape", [projected, split_heads], f"{n}.{name}.r")  # noqa: B023
            return node("Transpose", [shaped], f"{n}.{name}.t", perm=perm)  # noqa: B023

        q = heads_of("q", "attention.self.query", [0, 2, 1, 3], scale)
        k = heads_of("k", "attention.self.key", [0, 2, 3, 1])
        v = heads_of("v", "attention.self.value", [0, 2, 1, 3])
        scores = node("Add", [node("MatMul", [q, k], f"{n}.qk"), mask], f"{n}.scores")
        probs = node("Softmax", [scores], f"{n}.probs", axis=-1)
        context = node("MatMul", [probs, v], f"{n}.ctx")
        context = node("Transpose", [context], f"{n}.ctx.t", perm=[0, 2, 1, 3])
        context = node("Reshape", [context, merge_heads], f"{n}.ctx.r")
        attended = linear(context, p + "attention.output.dense", f"{n}.o")
        x = layer_norm(
            node("Add", [attended, x], f"{n}.res1"), p + "attention.output.LayerNorm", f"{n}.ln1"
        )
        inner = linear(x, p + "intermediate.dense", f"{n}.i")
        erf = node("Erf", [node("Div", [inner, root2], f"{n}.gd")], f"{n}.erf")
        gelu = node(
            "Mul",
            [node("Mul", [inner, half], f"{n}.gh"), node("Add", [erf, one], f"{n}.g1")],
            f"{n}.gelu",
        )
        out = linear(gelu, p + "output.dense", f"{n}.f")
        x = layer_norm(node("Add", [out, x], f"{n}.res2"), p + "output.LayerNorm", f"{n}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="out"))

    graph = helper.make_graph(
        nodes,
        "bert",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "tokens"]),
        ],
        [
            helper.make_tensor_value_info(
                "last_hidden_state", TensorProto.FLOAT, ["batch", "tokens", hidden]
            )
        ],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="lockgate"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def parse_quantize(raw: object) -> str | None:
    """The `quantize:` option of an embedding-classifier model: None (off) or "int8"."""
    if raw is None or raw is False:
        return None
    if raw is True or raw == "int8":
        return "int8"
    raise ConfigError(
        f"quantize: must be int8 (or true), or false to keep float32, not {raw!r}",
        hint="write quantize: int8",
    )


def quantize_int8(graph: bytes) -> bytes:
    """The graph with its weight matrices stored and multiplied as int8 (ONNX Runtime's dynamic
    quantization: one scale per output column of each weight matrix, the activations quantized
    per batch as it runs; the word-embedding table is stored as int8 too). On 2 AVX2 cores
    without VNNI it embeds banking77's texts about 1.4 times as fast as the float32 graph
    (benchmarks/RESULTS.md, issue 16)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ConfigError(
            "quantizing the encoder needs the onnx package and ONNX Runtime",
            hint="install the tuning extra: pip install 'lockgate[tune]'",
        ) from None
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # its advice to pre-process applies to vision models
    try:
        return _quantize_files(graph, quantize_dynamic, QuantType.QInt8, onnx.TensorProto.FLOAT)
    finally:
        logging.disable(previous)


def _quantize_files(graph: bytes, quantize_dynamic: Any, weight_type: Any, default: int) -> bytes:
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="lockgate-quantize-") as folder:
        source, target = Path(folder) / "float32.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(graph)
        quantize_dynamic(
            source,
            target,
            per_channel=True,
            weight_type=weight_type,
            extra_options={"DefaultTensorType": default},
        )
        return target.read_bytes()
