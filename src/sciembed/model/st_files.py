"""The sentence-transformers files of a model folder, so ``SentenceTransformer(folder)`` computes
sciembed's base embedding (same pooling, same normalisation, same truncation).

Written in the classic layout (``sentence_transformers.models.*``), which sentence-transformers 2.x
to 6.x all load. The adapters are not part of it: see :mod:`sciembed.integrations.sentence_transformers`.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import SciEmbedConfig

POOLING_DIR = "1_Pooling"
NORMALIZE_DIR = "2_Normalize"


def write_sentence_transformers_files(folder: Path, config: SciEmbedConfig, dimension: int) -> None:
    if config.pooling not in ("cls", "mean"):
        raise ValueError(f"pooling {config.pooling!r} has no sentence-transformers equivalent")
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": POOLING_DIR, "type": "sentence_transformers.models.Pooling"},
    ]
    if config.normalize:
        modules.append({"idx": 2, "name": "2", "path": NORMALIZE_DIR, "type": "sentence_transformers.models.Normalize"})
        (folder / NORMALIZE_DIR).mkdir(exist_ok=True)
    pooling = {
        "word_embedding_dimension": dimension,
        "pooling_mode_cls_token": config.pooling == "cls",
        "pooling_mode_mean_tokens": config.pooling == "mean",
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / POOLING_DIR).mkdir(exist_ok=True)
    _write_json(folder / POOLING_DIR / "config.json", pooling)
    _write_json(folder / "sentence_bert_config.json", {"max_seq_length": config.max_length, "do_lower_case": False})
    _write_json(folder / "modules.json", modules)


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n")
