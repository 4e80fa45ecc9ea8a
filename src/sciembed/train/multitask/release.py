"""Release a stage-2 run as a shipped model folder: fp16 safetensors, adapters, heads and a model card."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ...evaluate.benchmark import read_results
from ...evaluate.bootstrap import N_BOOT, SEED, compare_models
from ...evaluate.results import Comparison, Interval, ModelResult
from ...model import load_model, save_model
from ...model.bases import REGISTRY_BASES, RegistryBase, find_base
from .heads import HEADS_DIR

CARD = """---
license: apache-2.0
library_name: sciembed
tags: [scientific-documents, embeddings, specter2, adapters]
---
# {name}

Scientific-document embeddings in the style of SPECTER2: an encoder from {start} ({dimension} dimensions) plus one
bottleneck adapter per task format: `proximity` ([PRX], the default, for similarity / recommendation),
`classification` ([CLF]), `regression` ([RGN]) and `adhoc_query` ([QRY], short search queries; their
candidates use `proximity`). Input: `title [SEP] abstract`; pooling and normalisation as in `sciembed.json`.

```
sciembed embed papers.jsonl out.parquet -m {name}
sciembed embed papers.jsonl out.parquet -m {name} -f classification
```

## Training
1. Start: `sentence-transformers/{start}` (Apache-2.0).
2. {stage1}
3. Stage 2 (adapters, this release): base frozen; four Pfeiffer bottleneck adapters (reduction factor
   {reduction}) trained jointly with one head per task (dropout 0.2 + linear) on a mixed proportional
   mixture; total loss = sum of per-task means (CE, BCE-with-logits, MSE, triplet). Recipe:
   {recipe}
   Mixture (built by `sciembed train build-mixture`, seed 42, no sciembed-lite test item):
{mixture}

Heads are in `heads/<task>/` (`sciembed.train.multitask.load_heads`); they are not needed to embed.
Rebuild from scratch: `scripts/rebuild_model.sh`.

## Scores (sciembed-lite)
Release rule (`sciembed train release --check`, docs/BENCHMARK.md): against the model training started
from, the out-of-training average is higher beyond its measured noise (paired-bootstrap 95% interval
above 0) and no format's out-of-training average is lower beyond noise.

{scores}

## Data and licenses
arXiv metadata (CC0), S2ORC sample (ODC-By 1.0), ACL Anthology (CC BY 4.0), AAN citation graph (AAN
terms, research use), SciTLDR (Apache-2.0). Weights: Apache-2.0, as the {start} starting point.

## Limits
Trained on small data (tens of thousands of examples, mostly computer science and NLP); titles only
for many ACL papers; English only; 256-token training length. Not a reproduction of SPECTER2 (6M
triplets); compare on your own tasks before relying on it. The `classification` adapter learned
computer-science categories: on biomedical (MeSH) and fields-of-study labels it is below the base
and below all-MiniLM-L6-v2, so for classification outside computer science try the `proximity`
format as well. Weights are stored in fp16.
"""


STAGE1_FULL = """Stage 1 (base): SPECTER-style citation triplets mined from the ACL Anthology Network 2013 graph
   (held-out evaluation citing papers excluded), triplet loss with margin 1."""
STAGE1_DELTA = """Stage 1 (base) as a low-rank delta over the frozen start: rank {rank}, alpha {alpha:g}, on every
   attention and feed-forward linear ({linears} linears, {parameters:,} parameters), trained on citation
   triplets (see the run's config); `delta/` holds the fp16 factors, merged into the base once at load."""


FORMAT_NAMES = {
    "classification": "classification",
    "regression": "regression",
    "proximity": "proximity",
    "adhoc_search": "search",
}


@dataclass(frozen=True)
class ReleaseCheck:
    """The release rule against the model training started from (docs/BENCHMARK.md, "Release rule"):

    1. the out-of-training average is higher by more than its measured noise (interval low > 0);
    2. no format's out-of-training average is lower beyond noise (each interval's high >= 0).
    """

    base: str
    candidate: str
    out_of_training: Interval
    formats: dict[str, Interval]  # out-of-training average per format (formats that have such tasks)
    in_training: Interval | None
    overall: Interval | None
    n_boot: int
    confidence: float

    @property
    def failures(self) -> list[str]:
        out = []
        if not self.out_of_training.above_zero:
            out.append(
                f"out-of-training average {self.out_of_training.diff:+.2f} is not above noise "
                f"(interval low {self.out_of_training.low:+.2f} <= 0)"
            )
        for fmt, iv in self.formats.items():
            if iv.below_zero:
                out.append(
                    f"{FORMAT_NAMES[fmt]} out-of-training average {iv.diff:+.2f} is lower beyond noise "
                    f"(interval high {iv.high:+.2f} < 0)"
                )
        return out

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        def show(iv: Interval | None) -> str:
            return "-" if iv is None else f"{iv.diff:+.2f} [{iv.low:+.2f}, {iv.high:+.2f}] ({iv.n} tasks)"

        pct = int(round(self.confidence * 100))
        lines = [
            f"release rule {'passes' if self.passed else 'fails'}: {self.candidate} vs {self.base} "
            f"(paired bootstrap, {self.n_boot} resamples, {pct}% intervals)",
            f"  out-of-training average: {show(self.out_of_training)}",
        ]
        lines += [f"  out-of-training {FORMAT_NAMES[f]}: {show(iv)}" for f, iv in self.formats.items()]
        lines += [f"  in-training average: {show(self.in_training)}", f"  overall average: {show(self.overall)}"]
        lines += [f"  refused: {reason}" for reason in self.failures]
        return "\n".join(lines)


def check_release_rule(
    results: str | Path, base: str, candidate: str, n_boot: int = N_BOOT, seed: int = SEED
) -> ReleaseCheck:
    """Apply the release rule to a ``sciembed evaluate`` ``results.json`` holding ``base`` (the model
    training started from) and ``candidate`` (model specs as given to ``--model``, or names). Every task
    must have been scored for both, with per-item data (the bootstrap's input)."""
    suite = read_results(results)

    def find(spec: str) -> ModelResult:
        entry = suite.model(spec) or suite.model(str(Path(spec)))
        if entry is None:
            names = sorted(m.spec or m.name for m in suite.models)
            raise ValueError(f"{results}: no model {spec!r}; it has {names}")
        return entry

    entries = {"base": find(base), "candidate": find(candidate)}
    for role, entry in entries.items():
        for task in suite.tasks:
            result = entry.scored(task["name"])
            if result is None:
                raise ValueError(
                    f"{results}: {role} {entry.name!r} has no score for {task['name']!r}; the rule needs every task"
                )
            if result.items is None:
                raise ValueError(
                    f"{results}: task {task['name']!r} has no per-item data; "
                    "re-run `sciembed evaluate` with this version"
                )
    pair = replace(suite, models=[entries["base"], entries["candidate"]], comparisons=None)
    comparison = compare_models(pair, entries["base"].name, [entries["candidate"].name], n_boot, seed)
    try:
        return release_check(comparison, entries["candidate"].name)
    except ValueError as exc:
        raise ValueError(f"{results}: {exc}") from None


def release_check(comparison: Comparison, candidate: str) -> ReleaseCheck:
    """The rule on ``candidate``'s paired-bootstrap differences vs ``comparison.reference`` (the model
    training started from), e.g. the ``comparisons`` a ``sciembed evaluate`` run stored."""
    differences = comparison.models[candidate]
    out = differences.average("out_of_training")
    if out is None:
        raise ValueError("no out-of-training task; the rule cannot be applied")
    formats = {fmt: iv for fmt in FORMAT_NAMES if (iv := differences.average(f"out_of_training/{fmt}")) is not None}
    return ReleaseCheck(
        base=comparison.reference,
        candidate=candidate,
        out_of_training=out,
        formats=formats,
        in_training=differences.average("in_training"),
        overall=differences.average("overall"),
        n_boot=comparison.n_boot,
        confidence=comparison.confidence,
    )


# What a run recorded about how it embeds; an adapters-only release keeps them.
EMBEDDING_SETTINGS = ("max_length", "pooling", "normalize", "text_fields")


def _stage1_text(model) -> str:
    delta = model.delta
    if delta is None:
        return STAGE1_FULL
    config = delta.config
    return STAGE1_DELTA.format(
        rank=config.rank, alpha=config.alpha, linears=len(delta.factors), parameters=delta.num_parameters
    )


def release_model(
    run_model: str | Path,
    target: str | Path,
    scores: str | Path | None = None,
    name: str = "sciembed-minilm",
    base_model: str | None = None,
    card: str | Path | None = None,
    registry: Sequence[RegistryBase] = REGISTRY_BASES,
) -> Path:
    """Copy a trained model folder to ``target`` in fp16 with its heads and a README model card.

    ``base_model``: the run trained adapters over this frozen registry base (``all-minilm-l6-v2``,
    ``all-mpnet-base-v2``); the release then holds only the adapters (its base is built from the
    verified registry packages at load), and the run folder needs no base weights; a run over a
    low-rank stage-1 delta (``delta/`` beside ``adapters/``) ships that delta too.
    ``card``: a README to ship instead of the generated stage-2 card. ``registry``: where
    ``base_model`` is looked up (:func:`sciembed.model.load_model`).
    """
    run_model, target = Path(run_model), Path(target)
    if base_model is not None:
        from ...model.config import SciEmbedConfig
        from ...model.delta import DELTA_DIR
        from ...model.folder import ADAPTERS_DIR, attach_delta, load_adapter

        model = load_model(base_model, registry=registry)
        run_config = SciEmbedConfig.load(run_model)
        for setting in EMBEDDING_SETTINGS:  # as trained and evaluated (e.g. max_length 256), not the base's
            setattr(model.config, setting, getattr(run_config, setting))
        if (run_model / DELTA_DIR).is_dir():  # a low-rank stage 1: the delta ships too, merged at load
            attach_delta(model, run_model / DELTA_DIR)
        adapters = run_model / ADAPTERS_DIR
        for folder in sorted(p for p in adapters.iterdir() if p.is_dir()) if adapters.is_dir() else []:
            load_adapter(model, folder.name, folder)
    else:
        model = load_model(run_model, registry=registry)
    registry_base = find_base(base_model, registry) if base_model is not None else None
    start = registry_base.display_name if registry_base is not None else "all-MiniLM-L6-v2"
    model.config.name = name
    if target.exists():
        shutil.rmtree(target)
    save_model(model, target, dtype="fp16" if base_model is None else None, base_model=base_model, registry=registry)
    if (run_model / HEADS_DIR).is_dir():
        shutil.copytree(run_model / HEADS_DIR, target / HEADS_DIR)
    run = run_model.parent
    recipe, mixture, reduction = "see stage2.yaml", "", "16"
    if (run / "stage2.yaml").is_file():
        import yaml

        cfg = yaml.safe_load((run / "stage2.yaml").read_text())
        shutil.copy(run / "stage2.yaml", target / "stage2.yaml")
        reduction = str(cfg.get("reduction_factor"))
        optim = cfg.get("optim", {})
        heads_lr = ", ".join(f"`{k}*` {v}" for k, v in optim.get("lr_by_prefix", {}).items())
        weights = ", ".join(f"{k} x{v}" for k, v in cfg.get("task_weights", {}).items())
        recipe = (
            f"batch {cfg['batch_size']}, AdamW lr {optim.get('lr')} ({heads_lr or 'same for heads'}), "
            f"weight decay {optim.get('weight_decay')}, warmup {optim.get('warmup_ratio')}, {cfg['epochs']} epochs, "
            f"max length {cfg['max_length']}, {cfg['precision']}; losses on the {cfg.get('loss_embedding', 'raw')} "
            f"pooled output; task weights: {weights or 'none'}."
        )
        mixture = "\n".join(
            f"   - `{t['name']}` ({t['format']}, {t.get('max_examples')} examples): {t.get('description', '')}"
            for t in cfg["tasks"]
        )
    if (run / "summary.json").is_file():
        shutil.copy(run / "summary.json", target / "training_summary.json")
    table = Path(scores).read_text() if scores is not None else "(not evaluated yet: see docs/TRAINING.md)"
    text = (
        Path(card).read_text()
        if card is not None
        else CARD.format(
            name=name,
            start=start,
            dimension=model.dimension,
            stage1=_stage1_text(model),
            recipe=recipe,
            mixture=mixture,
            reduction=reduction,
            scores=table,
        )
    )
    (target / "README.md").write_text(text)
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    (target / "release.json").write_text(json.dumps({"name": name, "bytes": size, "from": str(run_model)}) + "\n")
    return target
