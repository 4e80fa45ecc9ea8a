"""Training configs: dataclasses read from YAML or JSON, unknown keys and wrong types rejected.

Every field is documented in the ``Fields`` section of its class docstring; ``docs/TRAINING.md``
repeats them. Relative paths are relative to the working directory of the run.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .losses import TRIPLET_LOSSES

T = TypeVar("T")

PRECISIONS = ("auto", "bf16", "fp32")
SCHEDULES = ("linear", "constant")
LOSS_EMBEDDINGS = ("model", "raw")


class ConfigError(ValueError):
    """A config file or override that does not fit its dataclass (the message names the key)."""


@dataclass
class OptimConfig:
    """AdamW with linear warm-up, then linear decay to zero (or constant).

    Fields:
      lr: peak learning rate (after warm-up).
      weight_decay: AdamW weight decay; never applied to biases or normalisation weights.
      betas: AdamW (beta1, beta2).
      eps: AdamW epsilon.
      warmup_ratio: share of all optimizer steps spent warming up linearly from 0 to ``lr``.
      warmup_steps: warm-up length in steps; when set it overrides ``warmup_ratio``.
      schedule: after warm-up, ``linear`` decay to 0 at the last step, or ``constant``.
      max_grad_norm: clip the global gradient L2 norm to this value; null disables clipping.
      lr_by_prefix: peak learning rates of parameters whose name starts with a prefix (the longest
        matching prefix wins), e.g. ``{"heads.": 1.0e-3}`` for freshly initialised task heads.
    """

    lr: float = 2e-5
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None
    schedule: str = "linear"
    max_grad_norm: float | None = 1.0
    lr_by_prefix: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optim.lr must be positive, got {self.lr}")
        if not isinstance(self.lr_by_prefix, dict) or not all(isinstance(k, str) and k for k in self.lr_by_prefix):
            raise ConfigError(
                f"optim.lr_by_prefix must map parameter-name prefixes to learning rates, got {self.lr_by_prefix!r}"
            )
        for prefix, lr in self.lr_by_prefix.items():
            if not isinstance(lr, int | float) or isinstance(lr, bool) or lr <= 0:
                raise ConfigError(f"optim.lr_by_prefix[{prefix!r}] must be a positive number, got {lr!r}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2:
            raise ConfigError(f"optim.betas must be two numbers, got {self.betas}")
        if not 0 <= self.warmup_ratio < 1:
            raise ConfigError(f"optim.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise ConfigError(f"optim.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"optim.max_grad_norm must be positive or null, got {self.max_grad_norm}")


@dataclass
class LoopConfig:
    """Settings of the generic training loop (shared by every stage).

    Fields:
      output_dir: folder for ``model/`` (the trained sciembed model), ``checkpoints/``,
        ``metrics.jsonl``, ``training.png``, ``curve.md`` and ``config.json``.
      seed: seed of model-side randomness (dropout) and of the data order.
      epochs: passes over the training data.
      max_steps: stop after this many optimizer steps (null: ``epochs`` full passes); the schedule
        is laid out over ``min(max_steps, epochs x steps per epoch)`` steps.
      batch_size: examples per optimizer step, over all processes and accumulation steps together
        (the global batch).
      grad_accum_steps: micro-batches per optimizer step; each process runs
        ``batch_size / grad_accum_steps / world_size`` examples per forward.
      precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``bf16`` (autocast on CUDA; CPU
        always runs fp32) or ``fp32``. Weights and optimizer state stay fp32.
      gradient_checkpointing: recompute activations in the backward pass (less memory, ~30% slower).
      device: ``cpu``, ``cuda``, ``cuda:1`` ...; null picks CUDA when present. Under ``torchrun``
        each process uses ``cuda:LOCAL_RANK``.
      checkpoint_every: save a resumable checkpoint every N optimizer steps (0: only at the end).
      keep_checkpoints: how many of the newest checkpoints to keep.
      resume: ``auto`` (continue from the newest checkpoint in ``output_dir`` if any), ``never``
        (start over; existing checkpoints are replaced as new ones are written), or a checkpoint folder.
      log_every: write a metrics line (loss, lr, grad norm, throughput) every N steps; the host
        waits for the GPU only at these steps.
      validate_every: run validation every N steps (0: only after the last step); validation also
        runs before the first step when ``validate_at_start`` is true.
      validate_at_start: validate the initial model too (step 0 of the curve).
      progress: show a progress bar (rank 0 only).
      pin_memory: pin host batches and copy them to the GPU asynchronously (CUDA only).
      ddp_find_unused_parameters: passed to DistributedDataParallel (needed when some trainable
        parameters get no gradient in a step, e.g. adapters of formats absent from a batch).
    """

    output_dir: str = "runs/train"
    seed: int = 42
    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 32
    grad_accum_steps: int = 1
    precision: str = "auto"
    gradient_checkpointing: bool = False
    device: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    resume: str = "auto"
    log_every: int = 10
    validate_every: int = 0
    validate_at_start: bool = True
    progress: bool = True
    pin_memory: bool = True
    ddp_find_unused_parameters: bool = False
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "grad_accum_steps", "log_every", "keep_checkpoints"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "validate_every"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"max_steps must be at least 1 or null, got {self.max_steps}")
        if self.batch_size % self.grad_accum_steps:
            raise ConfigError(
                f"batch_size ({self.batch_size}) must be a multiple of grad_accum_steps ({self.grad_accum_steps})"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.resume:
            raise ConfigError("resume must be 'auto', 'never' or a checkpoint folder")


@dataclass
class LoraConfig:
    """Stage 1 as a low-rank delta over the frozen starting model (LoRA); ``lora:`` in a stage-1 config.

    Fields:
      rank: rank of each update ``B @ A``.
      alpha: the update is scaled by ``alpha / rank`` (LoRA's convention; keeps the learning rate
        meaningful when the rank changes).
      targets: fnmatch patterns of a linear's path inside an encoder layer that get an update:
        ``"*"`` (default) is every linear (BERT: ``attention.self.query``/``key``/``value``,
        ``attention.output.dense``, ``intermediate.dense``, ``output.dense``; MPNet:
        ``attention.attn.q``/``k``/``v``/``o`` and the same two feed-forward ones); ``attention.*``
        only the attention.
      save_dtype: dtype of the saved factors (``fp16`` or ``fp32``); the trained model is the
        frozen base with the factors rounded to it merged, so what is evaluated is what ships.
    """

    rank: int = 16
    alpha: float = 32.0
    targets: list[str] = field(default_factory=lambda: ["*"])
    save_dtype: str = "fp16"

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"lora.rank must be at least 1, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"lora.alpha must be positive, got {self.alpha}")
        if not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise ConfigError(f"lora.targets must be a non-empty list of patterns, got {self.targets!r}")
        if self.save_dtype not in ("fp16", "fp32"):
            raise ConfigError(f"lora.save_dtype must be fp16 or fp32, got {self.save_dtype!r}")


@dataclass
class BaseTrainConfig(LoopConfig):
    """Stage 1: train the base encoder on citation triplets (``sciembed train base``).

    Fields (besides those of the loop, above):
      init_model: the starting model: a sciembed / Hugging Face model folder or a name
        ``load_model`` knows (``all-minilm-l6-v2``, ``default``, a hub name).
      train_triplets: training triplets (JSON lines ``{"query", "pos", "neg"}``, plain or gzipped),
        as written by ``sciembed mine-triplets``.
      dev_triplets: dev triplets for validation (triplet accuracy and dev loss); null: none.
      train_tokens: pre-tokenised copy of ``train_triplets`` (``.npz``, a few MB): read when it was
        made with the same tokenizer, max_length and text fields, else written from
        ``train_triplets``; then the triplet file itself need not exist (GPU machines). null: none.
      dev_tokens: the same for ``dev_triplets``.
      max_dev_triplets: use at most this many dev triplets (the first ones of the file); null: all.
      max_length: truncation in tokens (also stored in the trained model's ``sciembed.json``).
      margin: margin of the triplet loss ``max(d(q,pos) - d(q,neg) + margin, 0)`` (L2 distance).
      loss: ``margin`` (SPECTER's triplet margin loss) or ``contrastive`` (in-batch negatives plus the
        mined hard negative, scaled cosine, cross-entropy: how the sentence-transformers bases were trained).
      contrastive_scale: cosine scale (inverse temperature) of the contrastive loss.
      distill_weight: weight of a distillation term that keeps each training document's embedding
        direction close to the starting model's (cosine distance to a frozen copy); 0: off.
      loss_embedding: ``raw`` (default): the pooled output before normalisation (SPECTER's recipe);
        ``model``: the embedding exactly as the model serves it (L2-normalised when the model
        normalises, e.g. MiniLM; with margin 1 on unit vectors this hurt, see docs/TRAINING.md).
      group_buffer_batches: length grouping: the shuffled triplets are cut into buffers of this
        many batches, sorted by length within a buffer and cut into batches, and the batches are
        shuffled; 1 disables grouping (batches in shuffled order).
      max_forward_chunks: a batch's 3 x B documents are sorted by length and embedded in up to this
        many padded chunks (split where it saves the most padding; 1: one forward padded to the
        longest document). All chunks run in one module call, so DDP is unaffected.
      eval_batch_size: documents per forward in validation.
      validate_lite_tasks: sciembed-lite tasks run at each validation, by name (e.g.
        ``AAN citation prediction``); needs ``sciembed.evaluate``, its data and pytrec-eval. A task
        that cannot run is reported once in the log and skipped, training goes on.
      lite_data_root: data root for building sciembed-lite (null: ``$SCIEMBED_DATA`` or ../shared/data).
      lite_dir: where sciembed-lite is built/cached (null: ``.cache/sciembed-lite``).
      model_name: ``name`` written to the trained model's ``sciembed.json`` (empty: keep the name).
      save_dtype: dtype of the saved model weights (``fp32``, ``fp16``, ``bf16``; null: fp32).
      lora: train a low-rank delta over the frozen starting model instead of all its weights (see
        ``LoraConfig``); null: full fine-tuning. The model folder then also holds ``delta/`` (the
        factors, ~1 MB for MiniLM at rank 16), so it can ship as registry base + delta.
      time_budget_s: stop training at the first step after this many seconds since the run began
        (loading and tokenising included) and save the model as it is then (the learning-rate
        schedule is cut short; the log says at which step); null: no limit; single process only.
    """

    init_model: str = "all-minilm-l6-v2"
    train_triplets: str = ""
    dev_triplets: str | None = None
    train_tokens: str | None = None
    dev_tokens: str | None = None
    max_dev_triplets: int | None = 2000
    max_length: int = 512
    margin: float = 1.0
    loss: str = "margin"
    contrastive_scale: float = 20.0
    distill_weight: float = 0.0
    loss_embedding: str = "raw"
    group_buffer_batches: int = 50
    max_forward_chunks: int = 3
    eval_batch_size: int = 128
    validate_lite_tasks: list[str] = field(default_factory=list)
    lite_data_root: str | None = None
    lite_dir: str | None = None
    model_name: str = ""
    save_dtype: str | None = None
    lora: LoraConfig | None = None
    time_budget_s: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"time_budget_s must be positive or null, got {self.time_budget_s}")
        if not self.train_triplets and not self.train_tokens:
            raise ConfigError("train_triplets is required (a triplets file from `sciembed mine-triplets`)")
        if self.max_length < 8:
            raise ConfigError(f"max_length must be at least 8, got {self.max_length}")
        if self.margin <= 0:
            raise ConfigError(f"margin must be positive, got {self.margin}")
        if self.loss_embedding not in LOSS_EMBEDDINGS:
            raise ConfigError(f"loss_embedding must be one of {LOSS_EMBEDDINGS}, got {self.loss_embedding!r}")
        if self.loss not in TRIPLET_LOSSES:
            raise ConfigError(f"loss must be one of {TRIPLET_LOSSES}, got {self.loss!r}")
        if self.contrastive_scale <= 0 or self.distill_weight < 0:
            raise ConfigError("contrastive_scale must be positive and distill_weight non-negative")
        if self.max_forward_chunks < 1:
            raise ConfigError(f"max_forward_chunks must be at least 1, got {self.max_forward_chunks}")
        if self.group_buffer_batches < 1:
            raise ConfigError(f"group_buffer_batches must be at least 1, got {self.group_buffer_batches}")


# ---- reading and writing -------------------------------------------------------------------------------
def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _check_value(value: Any, tp: Any, where: str) -> Any:
    """``value`` converted to ``tp`` (ints accepted for floats), else a ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if _is_dataclass_type(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, prefix=f"{where}.")
    if origin is list:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp) or (Any,)
        return [_check_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def from_dict(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    """Build config dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; known: {', '.join(sorted(known))}"
        )
    values = {name: _check_value(value, hints[name], prefix + name) for name, value in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or 'config'}: {exc}") from None


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def read_mapping(path: str | Path) -> dict[str, Any]:
    """A YAML (``.yaml``/``.yml``) or JSON file's top-level mapping."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({exc})") from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping of keys to values")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """``key=value`` / ``optim.lr=3e-5`` overrides (values parsed as YAML) applied to a mapping."""
    import yaml

    data = json.loads(json.dumps(data))
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        target = data
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
        target[parts[-1]] = yaml.safe_load(raw)
    return data


def load_config(path: str | Path, cls: type[T] = BaseTrainConfig, overrides: list[str] | None = None) -> T:
    """Read a YAML or JSON config into ``cls``; ``overrides`` are ``key=value`` strings applied on top."""
    data = apply_overrides(read_mapping(path), overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def save_config(config: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(to_dict(config), indent=2) + "\n")
