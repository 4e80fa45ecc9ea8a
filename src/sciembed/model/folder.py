"""The sciembed model folder: a Hugging Face base, its tokenizer, ``adapters/<format>/`` and ``sciembed.json``.

Also loads plain Hugging Face / sentence-transformers encoders and SPECTER2's published layout
(``allenai/specter2_base`` plus one adapter repository per format), from local folders or hub names.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from .adapter_io import load_adapter_weights, read_adapter_folder, write_adapter_folder
from .backends import TORCH_NAMES, load_exported, split_backend
from .bases import REGISTRY_BASES, RegistryBase, base_folder, find_base
from .config import CONFIG_NAME, SciEmbedConfig
from .default_model import DEFAULT_NAMES, SHIPPED_MODELS, default_model_path, shipped_model_path
from .delta import DELTA_DIR, LowRankDelta
from .encoder import SciEmbedModel, parse_dtype
from .formats import FORMAT_TOKENS, canonical_format
from .hashing import sha256_file, weight_file
from .mpnet_attention import use_sdpa_attention
from .protocol import Encoder
from .st_files import write_sentence_transformers_files
from .validation import check_against_base, check_tokenizer_files, first_line, read_weights_once

ADAPTERS_DIR = "adapters"
SPECTER2_BASE = "allenai/specter2_base"
SPECTER2_ADAPTERS = {
    "proximity": "allenai/specter2",
    "classification": "allenai/specter2_classification",
    "regression": "allenai/specter2_regression",
    "adhoc_query": "allenai/specter2_adhoc_query",
}


def _resolve_folder(name_or_path: str | Path) -> Path:
    """A local folder as is; a hub name downloaded (or found in the local HF cache)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{path} is a file, not a model or adapter folder")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(name_or_path)))
    except Exception as exc:  # the hub client raises many kinds of errors when offline
        raise FileNotFoundError(
            f"{name_or_path!r} is neither a local folder nor a reachable Hugging Face hub repository ({exc})"
        ) from None


def _sentence_transformers_pooling(folder: Path) -> tuple[str, bool, int | None] | None:
    """(pooling, normalize, max_seq_length) of a sentence-transformers folder, else None."""
    modules_path = folder / "modules.json"
    if not modules_path.is_file():
        return None
    modules = json.loads(modules_path.read_text())
    pooling, normalize = "mean", False
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            settings = json.loads((folder / module["path"] / "config.json").read_text())
            pooling = "cls" if settings.get("pooling_mode_cls_token") else "mean"
        elif kind.endswith("Normalize"):
            normalize = True
    max_length = None
    st_config = folder / "sentence_bert_config.json"
    if st_config.is_file():
        max_length = json.loads(st_config.read_text()).get("max_seq_length")
    return pooling, normalize, max_length


def _load_base(folder: str | Path, dtype: torch.dtype, attn_implementation: str | None, state_dict: dict | None = None):
    from transformers.utils import logging as hf_logging

    # The unused pooler of sentence-transformers checkpoints is reported as "unexpected": not news.
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return _load_base_quiet(folder, dtype, attn_implementation, state_dict)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _load_base_quiet(folder: str | Path, dtype: torch.dtype, attn_implementation: str | None, state_dict=None):
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    # No pooler: sciembed pools itself, and an unused randomly initialised pooler would change fingerprints.
    kwargs = {"dtype": dtype, "add_pooling_layer": False}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    loader, source = AutoModel, str(folder)
    if state_dict is not None:  # the weights were read (and hashed) already: build from them, no second read
        config = AutoConfig.from_pretrained(str(folder))
        model_class = AutoModel._model_mapping.get(type(config), None) if hasattr(AutoModel, "_model_mapping") else None
        if model_class is not None:
            loader, source = model_class, None
            kwargs.update(config=config, state_dict=state_dict)
    try:
        base = _from_pretrained_eager_fallback(loader, source, kwargs)
    except TypeError:  # transformers < 4.56 calls it torch_dtype; some architectures have no pooler switch
        kwargs["torch_dtype"] = kwargs.pop("dtype")
        try:
            base = _from_pretrained_eager_fallback(loader, source, kwargs)
        except TypeError:
            kwargs.pop("add_pooling_layer")
            base = _from_pretrained_eager_fallback(loader, source, kwargs)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return base, tokenizer


def _from_pretrained_eager_fallback(auto_model, folder: str | Path | None, kwargs: dict):
    """``from_pretrained``; where transformers refuses SDPA for the architecture (MPNet on
    transformers 4.x and 5.x) it loads eager attention, and MPNet's self-attention is then routed
    through SDPA by our own forward (``model.mpnet_attention``: same results, fused kernels)."""
    source = None if folder is None else str(folder)
    try:
        return auto_model.from_pretrained(source, **kwargs)
    except ValueError as exc:
        if kwargs.get("attn_implementation") != "sdpa" or "scaled_dot_product_attention" not in str(exc):
            raise
        base = auto_model.from_pretrained(source, **{**kwargs, "attn_implementation": "eager"})
        use_sdpa_attention(base)
        return base


def _is_published_layout(folder: Path) -> bool:
    return (folder / "specter2_base").is_dir()


def load_model(
    name_or_path: str | Path | None = None,
    adapters: Mapping[str, str | Path] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    attn_implementation: str | None = "sdpa",
    verify: bool = True,
    backend: str = "torch",
    registry: Sequence[RegistryBase] = REGISTRY_BASES,
) -> Encoder:
    """Load a sciembed model folder, a Hugging Face encoder, or SPECTER2's published layout.

    ``name_or_path``: a folder or hub name; ``None``/``"default"`` for the default model;
    ``"allenai/specter2"`` (or a folder holding ``specter2_base/``, ``specter2/``,
    ``specter2_classification/`` ...) for SPECTER2 with its four adapters. ``adapters`` maps a format
    (or ``[PRX]``-style alias) to an adapter folder or hub name, added to (or replacing) the model's own.
    ``backend="onnx"``: ``name_or_path`` is a ``sciembed export onnx`` folder, run with onnxruntime on
    CPU by an :class:`~sciembed.model.onnx_backend.OnnxEncoder` with the same ``encode`` API;
    ``backend="openvino"``: a ``sciembed export openvino`` (or onnx) folder run by OpenVINO. Given a
    model folder or name instead, either backend exports it once and reuses the export
    (:mod:`sciembed.model.export_cache`). ``registry``: the bases a name or a folder's ``base_model``
    may name (:mod:`sciembed.model.bases`; a mirror or a test passes its own).
    """
    backend, name_or_path = split_backend(name_or_path, backend)
    if backend not in TORCH_NAMES:
        return load_exported(backend, name_or_path, adapters, verify)
    name = str(name_or_path) if name_or_path is not None else "default"
    load_dtype = parse_dtype(dtype) or torch.float32
    extra_adapters = dict(adapters or {})
    registry_base = find_base(name, registry)
    if name.lower() in DEFAULT_NAMES:
        folder = default_model_path(verify)
    elif registry_base is not None:
        folder = base_folder(registry_base, verify)
    elif name.lower() in SHIPPED_MODELS and shipped_model_path(name.lower()) is not None:
        folder = shipped_model_path(name.lower())
    elif name.lower() in SHIPPED_MODELS and not Path(name).exists():
        raise FileNotFoundError(
            f"{name} is not in this checkout's models/ (nor $SCIEMBED_MODELS): it has not been released "
            "(no candidate has passed the release rule yet; docs/TRAINING.md)"
        )
    elif name.rstrip("/") in ("allenai/specter2", "specter2"):
        folder = _resolve_folder(SPECTER2_BASE)
        extra_adapters = {**SPECTER2_ADAPTERS, **extra_adapters}
    else:
        folder = _resolve_folder(name)
        if _is_published_layout(folder):
            local = {fmt: folder / repo.split("/")[1] for fmt, repo in SPECTER2_ADAPTERS.items()}
            extra_adapters = {**{f: p for f, p in local.items() if p.is_dir()}, **extra_adapters}
            folder = folder / "specter2_base"
    if (folder / "adapter_config.json").is_file() and not (folder / CONFIG_NAME).is_file():
        raise ValueError(
            f"{folder} is an adapter, not a model: load its base and pass adapters={{'proximity': '{folder}'}}"
        )
    model = _load_folder(folder, load_dtype, attn_implementation, verify, registry)
    if registry_base is not None:
        model.config.name = registry_base.display_name
    elif name.lower() in DEFAULT_NAMES and not model.config.name.startswith("sciembed"):
        model.config.name = "all-MiniLM-L6-v2"
    for fmt, source in extra_adapters.items():
        load_adapter(model, fmt, source)
    if device is not None or dtype is not None:
        model.place(device, dtype)
    return model


def _load_folder(
    folder: Path,
    dtype: torch.dtype,
    attn_implementation: str | None,
    verify: bool = True,
    registry: Sequence[RegistryBase] = REGISTRY_BASES,
) -> SciEmbedModel:
    own_config = SciEmbedConfig.load(folder) if (folder / CONFIG_NAME).is_file() else None
    base_source = folder
    if not (folder / "config.json").is_file():
        named = own_config.base_model if own_config is not None else None
        registry_base = find_base(named, registry) if named else None
        if registry_base is None:
            raise FileNotFoundError(f"{folder}: not a model folder (no config.json and no known base_model)")
        base_source = base_folder(registry_base, verify)  # adapters-only release over a registry base
    check_tokenizer_files(base_source)
    config_path = folder / CONFIG_NAME
    pinned = own_config.base_sha256 if own_config is not None and base_source == folder else None
    weights, sha256, state = read_weights_once(base_source, pinned, config_path)
    try:
        base, tokenizer = _load_base(base_source, dtype, attn_implementation, state)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ValueError(
            f"{weights or base_source}: cannot load the model ({type(exc).__name__}: {first_line(exc)})"
        ) from None
    del state
    if own_config is not None:
        config = own_config
        check_against_base(config, base, tokenizer, config_path)
        formats, config.formats = config.formats, []
        model = SciEmbedModel(base, tokenizer, config)
        if config.delta:  # merged into a registry base here; a folder's own weights hold it already
            attach_delta(model, folder / config.delta, merge=base_source != folder)
        for fmt in formats:
            load_adapter(model, fmt, folder / ADAPTERS_DIR / fmt)
        return model
    config = SciEmbedConfig(
        name=folder.name,
        base_sha256=sha256,
        max_length=min(512, int(getattr(base.config, "max_position_embeddings", 512))),
    )
    st = _sentence_transformers_pooling(folder)
    if st is not None:
        config.pooling, config.normalize, _ = st
    check_against_base(config, base, tokenizer, folder / "config.json")
    return SciEmbedModel(base, tokenizer, config)


def attach_delta(model: SciEmbedModel, folder: str | Path, merge: bool = True) -> LowRankDelta:
    """Read a low-rank delta folder into ``model.delta``; ``merge``: add it to the base weights (once)."""
    folder = Path(folder)
    if model.delta is not None and merge:
        raise ValueError(f"{folder}: the model has a low-rank delta merged already")
    delta = LowRankDelta.load(folder)
    if merge:
        delta.merge_into(model.base, source=str(folder))
    else:
        delta.linears(model.base, source=str(folder))  # it must at least fit the base
    model.delta = delta
    model.config.delta = DELTA_DIR
    return delta


def load_adapter(model: SciEmbedModel, format: str, source: str | Path) -> None:
    """Add an AdapterHub checkpoint or a sciembed adapter folder as the adapter of ``format``."""
    fmt = canonical_format(format)
    folder = _resolve_folder(source)
    config, _, weights = read_adapter_folder(folder)
    stack = model.add_adapter(fmt, config)
    load_adapter_weights(stack, weights, str(folder))


def _pooler_for_plain_transformers(base: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pooler weights that plain ``AutoModel.from_pretrained`` expects but sciembed does not load
    (it pools itself): an identity dense layer with zero bias, so ``pooler_output`` is
    ``tanh(hidden[CLS])`` instead of randomly initialised with a warning on every load."""
    from transformers import AutoModel

    try:
        with torch.device("meta"):
            full = AutoModel.from_config(base.config)
    except Exception:  # noqa: BLE001  an architecture AutoModel cannot build: save what we have
        return {}
    dtype = next(iter(state.values())).dtype if state else torch.float32
    extra = {}
    for key, meta in full.state_dict().items():
        if key in state or "pooler" not in key:
            continue
        if key.endswith("weight") and meta.dim() == 2 and meta.shape[0] == meta.shape[1]:
            extra[key] = torch.eye(meta.shape[0], dtype=dtype)
        else:
            extra[key] = torch.zeros(meta.shape, dtype=dtype)
    return extra


def save_model(
    model: SciEmbedModel,
    folder: str | Path,
    dtype: str | torch.dtype | None = None,
    base_model: str | None = None,
    registry: Sequence[RegistryBase] = REGISTRY_BASES,
) -> Path:
    """Write ``model`` as a sciembed model folder; ``dtype`` (e.g. fp16) shrinks the stored weights.

    ``base_model``: a registry base (:mod:`sciembed.model.bases`) whose weights the model's base
    equals (checked); the folder then holds only the adapters and ``sciembed.json``, and loading
    builds the base from the verified registry packages. A model with a low-rank delta
    (``model.delta``) also writes ``delta/``: over a registry base, the base must equal the registry
    weights with the delta merged, and loading merges it again. ``registry``: where ``base_model``
    is looked up (as in :func:`load_model`).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    store = parse_dtype(dtype)
    model_type = str(getattr(model.base.config, "model_type", "bert"))
    if base_model is not None:
        registry_base = find_base(base_model, registry)
        if registry_base is None:
            raise ValueError(f"unknown base_model {base_model!r}; known: {[b.name for b in registry]}")
        _check_same_base(model, base_folder(registry_base) / "model.safetensors")
        model.config.base_model = registry_base.name
        model.config.base_sha256 = registry_base.sha256
    else:
        state = {
            k: (v.to(store) if store is not None and v.is_floating_point() else v).detach().cpu().contiguous()
            for k, v in model.base.state_dict().items()
        }
        state.update(_pooler_for_plain_transformers(model.base, state))
        model.base.save_pretrained(str(folder), state_dict=state, safe_serialization=True)
        model.tokenizer.save_pretrained(str(folder))
        weights = weight_file(folder)
        model.config.base_model = None
        model.config.base_sha256 = sha256_file(weights) if weights is not None else None
    for fmt in model.formats:
        write_adapter_folder(
            model.adapters[fmt], folder / ADAPTERS_DIR / fmt, FORMAT_TOKENS[fmt], model_type, model.hidden_size, store
        )
    model.config.formats = model.formats
    model.config.delta = None
    if model.delta is not None:  # the factors as trained (stage 1 rounds them to fp16), or as ``dtype`` asks
        model.delta.save(folder / DELTA_DIR, store if store in (torch.float16, torch.float32) else None)
        model.config.delta = DELTA_DIR
    if base_model is None:  # an adapters-only folder has no base for sentence-transformers to load
        write_sentence_transformers_files(folder, model.config, model.hidden_size)
    model.config.save(folder)
    return folder


def _check_same_base(model: SciEmbedModel, weights: Path) -> None:
    """Refuse to drop base weights that differ from the registry base's (e.g. a fine-tuned base), or,
    for a model with a low-rank delta, from the registry base with that delta merged."""
    from safetensors import safe_open

    ours = model.base.state_dict()
    delta = model.delta
    pending = set(delta.factors) if delta is not None else set()
    with safe_open(str(weights), framework="pt") as handle:
        for key in handle.keys():
            name = key.split(".", 1)[1] if key.split(".", 1)[0] in ("bert", "mpnet", "roberta", "model") else key
            mine = ours.get(name, ours.get(key))
            if mine is None:
                continue
            mine, theirs = mine.detach().cpu(), handle.get_tensor(key)
            module = name.removesuffix(".weight")
            if module in pending:  # the same merge rule as at load; rescaling may leave rounding only
                pending.discard(module)
                expected = delta.merged_weight(module, theirs.to(mine.dtype)).float()
                same = torch.allclose(mine.float(), expected, rtol=1e-5, atol=1e-6)
            else:
                same = torch.equal(mine.float(), theirs.float())
            if not same:
                what = "adapters and its low-rank delta" if delta is not None else "adapters"
                raise ValueError(f"the model's base differs from {weights} at {key}: it cannot ship as {what} only")
    if pending:
        raise ValueError(f"the low-rank delta names linears that {weights} lacks: {sorted(pending)[:3]}")
