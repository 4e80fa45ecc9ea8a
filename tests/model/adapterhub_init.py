"""Deterministic, framework-free BERT weights for the AdapterHub parity fixture.

Used both by ``scripts/make_adapterhub_fixture.py`` (in an isolated venv with the real
``adapters`` library) and by our own tests, so the two sides see bit-identical encoder
weights without shipping a 110M-parameter checkpoint. Only numpy + zlib: no torch, no
transformers, so the values cannot drift with either library's init code.

Rule, per parameter ``name`` (HF ``BertModel`` naming, no ``bert.`` prefix, no pooler)::

    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    value = (rng.standard_normal(shape) * 0.02).astype(np.float32)   # float64 draw, then cast
    if name.endswith("LayerNorm.weight"):
        value = (1.0 + rng_draw * 0.02).astype(np.float32)

Every tensor (biases included) gets the same rule, so nothing is silently zero.
"""

from __future__ import annotations

import zlib

import numpy as np

STD = 0.02


def bert_param_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    """Parameter names and shapes of ``BertModel(config, add_pooling_layer=False)``."""
    h = int(config["hidden_size"])
    inter = int(config["intermediate_size"])
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (int(config["vocab_size"]), h),
        "embeddings.position_embeddings.weight": (int(config["max_position_embeddings"]), h),
        "embeddings.token_type_embeddings.weight": (int(config["type_vocab_size"]), h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}."
        for proj in ("query", "key", "value"):
            shapes[f"{p}attention.self.{proj}.weight"] = (h, h)
            shapes[f"{p}attention.self.{proj}.bias"] = (h,)
        shapes[f"{p}attention.output.dense.weight"] = (h, h)
        shapes[f"{p}attention.output.dense.bias"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.weight"] = (h,)
        shapes[f"{p}attention.output.LayerNorm.bias"] = (h,)
        shapes[f"{p}intermediate.dense.weight"] = (inter, h)
        shapes[f"{p}intermediate.dense.bias"] = (inter,)
        shapes[f"{p}output.dense.weight"] = (h, inter)
        shapes[f"{p}output.dense.bias"] = (h,)
        shapes[f"{p}output.LayerNorm.weight"] = (h,)
        shapes[f"{p}output.LayerNorm.bias"] = (h,)
    return shapes


def deterministic_param(name: str, shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng([int(seed), zlib.crc32(name.encode())])
    value = rng.standard_normal(shape) * STD
    if name.endswith("LayerNorm.weight"):
        value = 1.0 + value
    return value.astype(np.float32)


def deterministic_bert_state(config: dict, seed: int) -> dict[str, np.ndarray]:
    """float32 arrays keyed by HF ``BertModel`` names, e.g. ``encoder.layer.0.output.dense.weight``."""
    return {name: deterministic_param(name, shape, seed) for name, shape in bert_param_shapes(config).items()}
