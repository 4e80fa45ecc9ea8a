"""Stage 1: train the base encoder on citation triplets (SPECTER's recipe).

The triplet file is streamed once and tokenised up front: every distinct document text is
tokenised once (queries appear in several triplets) and kept as token ids, each triplet as three
indices. An epoch's batch order is a pure function of ``(seed, epoch)``:

1. shuffle all triplets;
2. cut them into buffers of ``group_buffer_batches x batch_size``, sort each buffer by the longest
   of its triplet's three documents, and cut it into batches (so little of a batch is padding);
3. shuffle the batches (so long and short batches alternate over the epoch), drop an incomplete
   last batch.

The data position saved in a checkpoint is therefore just ``(epoch, batches done)``, which makes a
resumed run see exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.triplets import read_triplets
from ..model import SciEmbedModel, load_model, save_model
from ..model.delta import DeltaConfig
from ..model.packed import Packed, no_cudnn_attention, pack_host, trains_packed
from ..model.text import HostPadded
from .config import BaseTrainConfig, save_config
from .distributed import DistInfo, barrier, cleanup, init_distributed
from .loop import Hook, StopTraining, Trainer, read_metrics, time_budget_hook
from .losses import l2_distance, triplet_objective
from .lowrank import attach_lowrank, count_trainable, detach_lowrank

MODEL_DIR = "model"
TOKENIZE_CHUNK = 8192


@dataclass
class TokenizedTriplets:
    """Triplets as indices into a table of distinct tokenised documents."""

    docs: list[np.ndarray]  # token ids (int32) of each distinct document
    lengths: np.ndarray  # tokens per document
    triplets: np.ndarray  # (n, 3) int64: query, pos, neg document indices
    truncated: int = 0  # documents cut at max_length

    def __len__(self) -> int:
        return len(self.triplets)

    def summary(self) -> str:
        mean = float(self.lengths.mean()) if len(self.lengths) else 0.0
        return (
            f"{len(self)} triplets, {len(self.docs)} distinct documents, mean length {mean:.0f} tokens, "
            f"{self.truncated} truncated"
        )


def tokenize_triplets(
    model: SciEmbedModel,
    path: str | Path,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> TokenizedTriplets:
    """Stream a triplet file and tokenise each distinct document text once (``model.config.max_length``)."""
    index: dict[str, int] = {}
    pending: list[str] = []
    docs: list[np.ndarray] = []
    rows: list[tuple[int, int, int]] = []
    max_length = model.config.max_length
    truncated = 0

    def flush() -> None:
        nonlocal truncated
        if not pending:
            return
        for ids in model.tokenize(pending):
            docs.append(np.asarray(ids, dtype=np.int32))
            truncated += len(ids) >= max_length
        pending.clear()

    start = time.perf_counter()
    for triplet in read_triplets(path):
        if limit is not None and len(rows) >= limit:
            break
        row = []
        for text in model.texts([triplet.query, triplet.pos, triplet.neg]):
            at = index.get(text)
            if at is None:
                at = index[text] = len(index)
                pending.append(text)
            row.append(at)
        rows.append((row[0], row[1], row[2]))
        if len(pending) >= TOKENIZE_CHUNK:
            flush()
    flush()
    if not rows:
        raise ValueError(f"{path}: no triplets (an empty training file)")
    data = TokenizedTriplets(
        docs=docs,
        lengths=np.asarray([len(d) for d in docs], dtype=np.int64),
        triplets=np.asarray(rows, dtype=np.int64).reshape(-1, 3),
        truncated=truncated,
    )
    if log is not None:
        log(f"{path}: {data.summary()} ({time.perf_counter() - start:.1f}s)")
    return data


# ---- token caches (pre-tokenised triplets in one small .npz) -------------------------------------------
def tokenizer_key(model: SciEmbedModel) -> str:
    """What decides the token ids: the vocabulary, max_length, text fields and separator."""
    import hashlib
    import json

    vocab = sorted(model.tokenizer.get_vocab().items())
    payload = json.dumps(
        [vocab, model.config.max_length, list(model.config.text_fields), model.separator], ensure_ascii=False
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


def save_tokens(data: TokenizedTriplets, path: str | Path, key: str) -> Path:
    """Write pre-tokenised triplets (token ids as uint16 when the vocabulary fits) atomically."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = np.concatenate(data.docs) if data.docs else np.zeros(0, dtype=np.int32)
    dtype = np.uint16 if flat.size == 0 or int(flat.max()) < 2**16 else np.int32
    offsets = np.zeros(len(data.docs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(data.lengths)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, tokens=flat.astype(dtype), offsets=offsets, triplets=data.triplets,
             truncated=np.int64(data.truncated), key=np.str_(key))  # fmt: skip
    os.replace(tmp, path)
    return path


def load_tokens(path: str | Path, key: str | None = None) -> TokenizedTriplets | None:
    """Pre-tokenised triplets from ``path``; None when missing or made with another tokenizer/max_length."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as npz:
        if key is not None and str(npz["key"]) != key:
            return None
        tokens, offsets = npz["tokens"].astype(np.int32), npz["offsets"]
        docs = [tokens[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
        return TokenizedTriplets(
            docs=docs,
            lengths=np.diff(offsets).astype(np.int64),
            triplets=npz["triplets"].astype(np.int64),
            truncated=int(npz["truncated"]),
        )


def prepare_triplets(
    model: SciEmbedModel,
    path: str | None,
    cache: str | None,
    limit: int | None = None,
    log: Callable[[str], None] | None = None,
) -> TokenizedTriplets:
    """Tokenised triplets from ``cache`` when it fits the model, else from ``path`` (then cached)."""
    key = tokenizer_key(model) + (f"-limit{limit}" if limit is not None else "")
    if cache:
        data = load_tokens(cache, key)
        if data is not None:
            if log is not None:
                log(f"{cache}: {data.summary()} (pre-tokenised)")
            return data
    if not path or not Path(path).exists():
        where = f" and no usable token cache {cache}" if cache else ""
        raise FileNotFoundError(f"triplets file {path!r} not found{where}")
    data = tokenize_triplets(model, path, limit=limit, log=log)
    if cache:
        save_tokens(data, cache, key)
    return data


def epoch_batches(
    lengths: np.ndarray, batch_size: int, seed: int, epoch: int, group_buffer_batches: int = 50
) -> list[np.ndarray]:
    """The epoch's batches (arrays of example indices), length-grouped, deterministic for (seed, epoch).

    ``lengths`` is the sort key of each example; incomplete batches are dropped.
    """
    n = len(lengths)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n)
    usable = (n // batch_size) * batch_size
    order = order[:usable]
    buffer = batch_size * group_buffer_batches
    batches: list[np.ndarray] = []
    for start in range(0, usable, buffer):
        chunk = order[start : start + buffer]
        if group_buffer_batches > 1:
            chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    permutation = rng.permutation(len(batches))
    return [batches[i] for i in permutation]


def collate_ids(docs: Sequence[np.ndarray], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad to the longest document of the batch (host tensors)."""
    return HostPadded.of(docs, pad_id)._asdict()


def plan_chunks(lengths: np.ndarray, max_chunks: int = 3, overhead_tokens: int = 2048) -> list[np.ndarray]:
    """Split a batch's documents into up to ``max_chunks`` forwards of similar length.

    Documents are sorted longest first; each split (after ``i`` documents) is placed where
    ``i x longest + rest x longest of the rest`` padded tokens is smallest, and only kept when it saves
    more than ``overhead_tokens`` (the cost of one more forward). Returns index arrays, longest first.
    """
    order = np.argsort(-np.asarray(lengths), kind="stable")
    sorted_lengths = np.asarray(lengths)[order]
    chunks: list[np.ndarray] = []
    start = 0
    while len(chunks) < max_chunks - 1 and len(order) - start > 1:
        seg = sorted_lengths[start:]
        cut = np.arange(1, len(seg))
        cost = cut * seg[0] + (len(seg) - cut) * seg[cut] + overhead_tokens
        best = int(np.argmin(cost))
        if cost[best] >= len(seg) * seg[0]:
            break
        chunks.append(order[start : start + cut[best]])
        start += int(cut[best])
    chunks.append(order[start:])
    return chunks


class ChunkedEncoder(torch.nn.Module):
    """The module trained (and DDP-wrapped) in stage 1: embeds several padded chunks in ONE forward call,
    so that DDP sees one forward per backward however a batch is split."""

    def __init__(self, model: SciEmbedModel, normalize: bool | None = None):
        super().__init__()
        self.model = model
        self.normalize = normalize

    def forward(self, chunks: Sequence[dict[str, torch.Tensor]] | Packed) -> torch.Tensor:
        if isinstance(chunks, Packed):  # all documents unpadded in one forward (CUDA, BERT/RoBERTa)
            return self.model.forward_packed(chunks, normalize=self.normalize)
        return torch.cat([self.model(c["input_ids"], c["attention_mask"], normalize=self.normalize) for c in chunks])


class TripletTask:
    """The stage-1 :class:`~sciembed.train.loop.TrainTask`: triplet margin loss over pooled embeddings."""

    def __init__(
        self,
        model: SciEmbedModel,
        train: TokenizedTriplets,
        config: BaseTrainConfig,
        device: torch.device,
        dev: TokenizedTriplets | None = None,
        log: Callable[[str], None] | None = None,
        packed: bool | None = None,
    ):
        """``packed``: one unpadded forward per batch (None: on CUDA where the base supports it)."""
        self.model = model
        self.train = train
        self.dev = dev
        self.config = config
        self.device = device
        self.pad_id = int(model.tokenizer.pad_token_id or 0)
        self.pin = config.pin_memory and device.type == "cuda"
        self.log = log or (lambda text: None)
        self.raw = config.loss_embedding == "raw"
        # sort key of a triplet: its longest document (one forward pads to it)
        self.keys = train.lengths[train.triplets].max(axis=1) if len(train) else np.zeros(0, dtype=np.int64)
        self.lite_tasks = list(config.validate_lite_tasks)
        self._lite_cache: dict[str, Any] = {}
        self.module = ChunkedEncoder(model, normalize=False if self.raw else None)  # what the Trainer trains
        # On CUDA the batch's 3 x B documents go through one unpadded forward (no padding, one set of
        # kernel launches instead of one per chunk); CPU keeps the padded chunks.
        self.packed = (device.type == "cuda" and trains_packed(model.base)) if packed is None else packed
        # distillation: a frozen copy of the starting model, as it is before the first step
        self.teacher: ChunkedEncoder | None = None
        if config.distill_weight > 0:
            frozen = copy.deepcopy(model).eval().requires_grad_(False).to(device)
            self.teacher = ChunkedEncoder(frozen, normalize=False if self.raw else None)

    # ---- data ---------------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        return len(self.train) // self.config.batch_size

    def batches(self, epoch: int, start: int = 0) -> Iterator[np.ndarray]:
        plan = epoch_batches(
            self.keys, self.config.batch_size, self.config.seed, epoch, self.config.group_buffer_batches
        )
        yield from plan[start:]

    def to_device(self, docs: Sequence[np.ndarray]) -> dict[str, torch.Tensor]:
        return HostPadded.of(docs, self.pad_id, self.pin).to(self.device)

    # ---- loss ---------------------------------------------------------------------------------------
    def embed(self, module: torch.nn.Module, docs: Sequence[np.ndarray]) -> torch.Tensor:
        tensors = self.to_device(docs)
        with no_cudnn_attention(self.device.type == "cuda"):
            return module(tensors["input_ids"], tensors["attention_mask"], normalize=self.module.normalize)

    def loss(self, module: torch.nn.Module, items: Sequence[int]) -> torch.Tensor:
        """``module``: the (DDP-wrapped) :class:`ChunkedEncoder` of this task; the batch's summed loss."""
        rows = self.train.triplets[np.asarray(items, dtype=np.int64)]
        doc_ids = rows.T.reshape(-1)  # queries, then positives, then negatives
        inputs = self._inputs(doc_ids)
        emb = self._embed_inputs(module, inputs, doc_ids)
        query, pos, neg = emb.split(len(rows))
        loss = triplet_objective(
            self.config.loss, query, pos, neg, self.config.margin, self.config.contrastive_scale, reduction="sum"
        )
        if self.teacher is not None:
            # keep every document's direction where the starting model put it (cosine distance)
            with torch.no_grad():
                target = self._embed_inputs(self.teacher, inputs, doc_ids)
            drift = 1.0 - torch.nn.functional.cosine_similarity(emb, target.float(), dim=-1)
            loss = loss + self.config.distill_weight * drift.view(3, -1).sum(0).sum()
        return loss

    def _inputs(self, doc_ids: np.ndarray) -> Packed | tuple[list[dict[str, torch.Tensor]], np.ndarray]:
        """The batch on the device: one packed sequence (CUDA), else padded chunks and their order."""
        if self.packed:
            return pack_host([self.train.docs[i] for i in doc_ids], pin=self.pin).to(self.device)[0]
        chunks = plan_chunks(self.train.lengths[doc_ids], self.config.max_forward_chunks)
        tensors = [self.to_device([self.train.docs[i] for i in doc_ids[chunk]]) for chunk in chunks]
        return tensors, np.concatenate(chunks)

    def _embed_inputs(self, module: torch.nn.Module, inputs, doc_ids: np.ndarray) -> torch.Tensor:
        """Embeddings of the batch's documents in ``doc_ids`` order (fp32)."""
        with no_cudnn_attention(self.device.type == "cuda"):
            if isinstance(inputs, Packed):
                return module(inputs).float()
            tensors, order = inputs
            emb_sorted = module(tensors)
        inverse = torch.from_numpy(np.argsort(order)).to(emb_sorted.device, non_blocking=True)
        return emb_sorted.float().index_select(0, inverse)

    # ---- validation ---------------------------------------------------------------------------------
    def dev_metrics(self, model: SciEmbedModel) -> dict[str, float]:
        """Triplet accuracy (share with d(q, pos) < d(q, neg)) and mean loss on the dev triplets."""
        dev = self.dev
        if dev is None or not len(dev):
            return {}
        used = np.unique(dev.triplets)
        vectors = torch.zeros((len(dev.docs), model.hidden_size), device=self.device)
        order = used[np.argsort(-dev.lengths[used], kind="stable")]
        step = self.config.eval_batch_size
        for start in range(0, len(order), step):
            chunk = order[start : start + step]
            vectors[torch.from_numpy(chunk).to(self.device)] = self.embed(model, [dev.docs[i] for i in chunk]).float()
        rows = torch.from_numpy(dev.triplets).to(self.device)
        q, p, n = vectors[rows[:, 0]], vectors[rows[:, 1]], vectors[rows[:, 2]]
        d_pos, d_neg = l2_distance(q, p), l2_distance(q, n)
        losses = torch.clamp(d_pos - d_neg + self.config.margin, min=0.0)
        return {
            "triplet_accuracy": float((d_pos < d_neg).float().mean().item()),
            "dev_loss": float(losses.mean().item()),
            "dev_d_pos": float(d_pos.mean().item()),
            "dev_d_neg": float(d_neg.mean().item()),
        }

    def lite_metrics(self, model: SciEmbedModel) -> dict[str, float]:
        """The configured sciembed-lite tasks through ``sciembed.evaluate`` (skipped, with a message, if
        that package, the task data or pytrec-eval is missing)."""
        if not self.lite_tasks:
            return {}
        try:
            results = run_lite_tasks(
                model,
                self.lite_tasks,
                data_root=self.config.lite_data_root,
                lite_dir=self.config.lite_dir,
                batch_size=self.config.eval_batch_size,
                memo=self._lite_cache,
            )
        except Exception as exc:  # noqa: BLE001  validation must never stop training
            self.log(f"warning: sciembed-lite validation disabled: {type(exc).__name__}: {exc}")
            self.lite_tasks = []
            return {}
        finally:
            model.train()
        return results

    def validate(self, module: torch.nn.Module, step: int) -> dict[str, float]:
        """Dev triplet metrics and lite tasks of the encoder (``module`` is the trained wrapper)."""
        metrics = self.dev_metrics(self.model)
        metrics.update(self.lite_metrics(self.model))
        return metrics


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def run_lite_tasks(
    model: SciEmbedModel,
    names: Sequence[str],
    data_root: str | None = None,
    lite_dir: str | None = None,
    batch_size: int = 128,
    memo: dict[str, Any] | None = None,
) -> dict[str, float]:
    """Run sciembed-lite tasks (by name) on ``model`` as it is (device, dtype); ``{"lite/<task>/<metric>": value}``.

    Uses ``sciembed.evaluate`` (``load_tasks``, ``load_task_data``, ``evaluate_task``) without an
    embedding cache; task data are loaded once per ``memo``.
    """
    from ..evaluate import SciEmbedEvalModel, evaluate_task, load_task_data, load_tasks
    from ..evaluate.benchmark import Embedder

    memo = memo if memo is not None else {}
    if "tasks" not in memo:
        tasks = load_tasks("lite", names=list(names), data_root=data_root, lite_dir=lite_dir)
        memo["tasks"] = [(task, load_task_data(task)) for task in tasks]
    # device=None: encode() keeps the model's current device and dtype (fp32 master weights)
    wrapped = SciEmbedEvalModel(model, name=model.config.name or "training", device=None, batch_size=batch_size)
    out: dict[str, float] = {}
    for task, data in memo["tasks"]:
        result = evaluate_task(task, data, wrapped, Embedder(wrapped, None))
        if not result.ok:
            raise RuntimeError(f"lite task {task.name!r}: {result.status} ({result.reason or ''})")
        for metric, value in result.metrics.items():
            if isinstance(value, int | float) and math.isfinite(value):
                out[f"lite/{_slug(task.name)}/{metric}"] = float(value)
    return out


# ---- the stage-1 entry point ---------------------------------------------------------------------------
def load_init_model(name: str) -> SciEmbedModel:
    """``load_model(name)``, in fp32 with SDPA attention.

    A local model folder is loaded even where the all-MiniLM-L6-v2 package is not installed (bare
    GPU machines: ``load_model`` compares every folder with that package's path).
    """
    try:
        return load_model(name, attn_implementation="sdpa")
    except FileNotFoundError as exc:
        folder = Path(name)
        if not (folder / "config.json").is_file() or "MiniLM" not in str(exc):
            raise
        from ..model.folder import _load_folder

        return _load_folder(folder, torch.float32, "sdpa")


def train_base(
    config: BaseTrainConfig,
    hooks: Sequence[Hook] = (),
    log: Callable[[str], None] | None = None,
    model: SciEmbedModel | None = None,
) -> Path:
    """Train a base encoder on triplets; returns the sciembed model folder ``<output_dir>/model``.

    Resumes from the newest checkpoint in ``output_dir`` (``resume: auto``). Under ``torchrun`` every
    process calls this; rank 0 writes the model, metrics and plots. ``model`` replaces loading
    ``config.init_model`` (tests).
    """
    info = init_distributed(config.device)
    say = log or (lambda text: print(text, flush=True))

    def main_log(text: str) -> None:
        if info.is_main:
            say(text)

    try:
        return _train_base(config, info, hooks, main_log, model)
    finally:
        cleanup(info)


def _train_base(
    config: BaseTrainConfig,
    info: DistInfo,
    hooks: Sequence[Hook],
    log: Callable[[str], None],
    model: SciEmbedModel | None,
) -> Path:
    began = time.perf_counter()
    output = Path(config.output_dir)
    if info.is_main:
        output.mkdir(parents=True, exist_ok=True)
        save_config(config, output / "config.json")
    if model is None:
        model = load_init_model(config.init_model)
    model.place("cpu", "fp32")
    model.config.max_length = config.max_length
    if config.model_name:
        model.config.name = config.model_name
    train = prepare_triplets(model, config.train_triplets, config.train_tokens, log=log)
    dev = None
    if config.dev_triplets or config.dev_tokens:
        dev = prepare_triplets(model, config.dev_triplets, config.dev_tokens, config.max_dev_triplets, log=log)
    task = TripletTask(model, train, config, info.device, dev=dev, log=log)  # the teacher: a copy before any delta
    updates, delta_config = None, None
    if config.lora is not None:
        delta_config = DeltaConfig(
            rank=config.lora.rank,
            alpha=config.lora.alpha,
            targets=tuple(config.lora.targets),
            base_sha256=model.config.base_sha256,
        )
        updates = attach_lowrank(model, delta_config, seed=config.seed)
        log(
            f"low-rank stage 1: rank {delta_config.rank}, alpha {delta_config.alpha:g}, {len(updates)} linears, "
            f"{count_trainable(model):,} trainable parameters (base frozen)"
        )
    hooks, stopped_at = list(hooks), []
    if config.time_budget_s is not None:
        if info.world_size > 1:  # ranks would disagree on the step to stop at
            raise ValueError("time_budget_s is for single-process runs; use max_steps under torchrun")
        hooks.append(time_budget_hook(config.time_budget_s, began, log, stopped_at))
    trainer = Trainer(config, task.module, task, dist=info, hooks=hooks, log=log)
    start = time.perf_counter()
    try:
        trainer.fit()
    except StopTraining:  # the time budget: the model is saved as it is at that step
        log(f"stopped by the time budget at step {stopped_at[0]} of {trainer.total_steps}")
    if updates is not None:
        model.to("cpu")
        detach_lowrank(model, updates, delta_config, config.lora.save_dtype)
    folder = output / MODEL_DIR
    if info.is_main:
        model.eval()
        save_model(model, folder, dtype=config.save_dtype)
        log(f"saved the trained model to {folder} ({time.perf_counter() - start:.0f}s of training)")
        try:
            from .plots import write_curve

            write_curve(read_metrics(output), output)
        except Exception as exc:  # noqa: BLE001  a plot must not fail a finished run
            log(f"warning: could not draw the training curve: {exc}")
    barrier(info)
    return folder
