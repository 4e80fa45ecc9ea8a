"""Checks of a model folder at load time: every problem is an error naming the file, before any
embedding is computed (a missing tokenizer or a typo in ``sciembed.json`` must never embed garbage)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..data import KNOWN_TEXT_FIELDS
from .hashing import WEIGHT_FILES, weight_file
from .pooling import POOLING_MODES

#: Files of which at least one makes a tokenizer (fast JSON, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)
SHARD_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
#: Position ids that RoBERTa-style models reserve before the first token (padding_idx + 1).
_POSITION_OFFSET = {"roberta": 2, "xlm-roberta": 2, "camembert": 2, "longformer": 2, "mpnet": 2}


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def check_tokenizer_files(folder: Path) -> None:
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise FileNotFoundError(
            f"{folder}: no tokenizer files ({', '.join(TOKENIZER_FILES[:3])} ...); copy the base model's "
            "tokenizer into the folder (without it every word would be an unknown token)"
        )


def read_weights_once(
    folder: Path, expected_sha256: str | None = None, pinned_in: Path | None = None
) -> tuple[Path | None, str | None, dict[str, Any] | None]:
    """``(weight file, its sha256, its tensors)``: a safetensors file is read once, hashed (and
    checked against ``expected_sha256``, recorded in ``pinned_in``) and parsed from the same bytes;
    other files are hashed and checked (the loader reads them); sharded models give Nones."""
    weights = weight_file(folder)
    if weights is None:
        if any((folder / name).is_file() for name in SHARD_INDEXES):
            return None, None, None
        raise FileNotFoundError(f"{folder}: no weight file ({' or '.join(WEIGHT_FILES)})")
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise ValueError(f"{weights}: cannot be read ({exc.strerror or exc})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    if expected_sha256 and sha256 != expected_sha256:
        raise ValueError(
            f"{weights}: sha256 {sha256} does not match base_sha256 {expected_sha256} in {pinned_in}; "
            "the weight file was replaced or damaged"
        )
    if weights.suffix != ".safetensors":
        return weights, sha256, None
    from safetensors.torch import load

    try:
        state = load(data)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        raise ValueError(f"{weights}: not a readable safetensors file ({first_line(exc)})") from None
    return weights, sha256, state


def check_config(config: Any, source: Path | str) -> None:
    """Settings of ``sciembed.json`` that are wrong whatever the base."""
    if config.pooling not in POOLING_MODES:
        raise ValueError(f"{source}: unknown pooling {config.pooling!r}; known: {', '.join(POOLING_MODES)}")
    fields = config.text_fields
    if not isinstance(fields, list) or not fields or not all(isinstance(f, str) for f in fields):
        raise ValueError(f"{source}: text_fields must be a non-empty list of field names, got {fields!r}")
    unknown = [f for f in fields if f not in KNOWN_TEXT_FIELDS]
    if unknown:
        raise ValueError(f"{source}: unknown text_fields {unknown}; known: {', '.join(KNOWN_TEXT_FIELDS)}")
    if isinstance(config.max_length, bool) or not isinstance(config.max_length, int) or config.max_length < 2:
        raise ValueError(f"{source}: max_length must be an integer of at least 2, got {config.max_length!r}")
    if not isinstance(config.normalize, bool):
        raise ValueError(f"{source}: normalize must be true or false, got {config.normalize!r}")


def check_against_base(config: Any, base: Any, tokenizer: Any, source: Path | str) -> None:
    """The settings and the tokenizer fit the loaded base: token ids within its vocabulary,
    ``max_length`` within its position embeddings."""
    check_config(config, source)
    model_config = base.config
    positions = getattr(model_config, "max_position_embeddings", None)
    if positions is not None:
        usable = int(positions) - _POSITION_OFFSET.get(getattr(model_config, "model_type", ""), 0)
        if config.max_length > usable:
            raise ValueError(
                f"{source}: max_length {config.max_length} is beyond the model's {usable} positions "
                f"(max_position_embeddings {positions})"
            )
    vocab = getattr(model_config, "vocab_size", None)
    if vocab is not None and len(tokenizer) > int(vocab):
        raise ValueError(
            f"{source}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary only {vocab}; "
            "tokenizer and weights come from different models"
        )
