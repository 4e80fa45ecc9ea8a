"""Release a stage-2 run as a shipped model folder: fp16 safetensors, adapters, heads and a model card."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...model import load_model, save_model
from .heads import HEADS_DIR

CARD = """---
license: apache-2.0
library_name: sciembed
tags: [scientific-documents, embeddings, specter2, adapters]
---
# sciembed-minilm

Scientific-document embeddings in the style of SPECTER2: a MiniLM-L6 encoder (384 dimensions) plus one
bottleneck adapter per task format: `proximity` ([PRX], the default, for similarity / recommendation),
`classification` ([CLF]), `regression` ([RGN]) and `adhoc_query` ([QRY], short search queries; their
candidates use `proximity`). Input: `title [SEP] abstract`; pooling and normalisation as in `sciembed.json`.

```
sciembed embed papers.jsonl out.parquet                 # this model is the default
sciembed embed papers.jsonl out.parquet -f classification
```

## Training
1. Start: `sentence-transformers/all-MiniLM-L6-v2` (Apache-2.0).
2. Stage 1 (base): SPECTER-style citation triplets mined from the ACL Anthology Network 2013 graph
   (held-out evaluation citing papers excluded), triplet loss with margin 1.
3. Stage 2 (adapters, this release): base frozen; four Pfeiffer bottleneck adapters (reduction factor
   {reduction}) trained jointly with one head per task (dropout 0.2 + linear) on a mixed proportional
   mixture; total loss = sum of per-task means (CE, BCE-with-logits, MSE, triplet). Recipe:
   {recipe}
   Mixture (built by `sciembed train build-mixture`, seed 42, no sciembed-lite test item):
{mixture}

Heads are in `heads/<task>/` (`sciembed.train.multitask.load_heads`); they are not needed to embed.
Rebuild from scratch: `scripts/rebuild_model.sh`.

## Scores (sciembed-lite)
The release column is the stage-2 adapters run (`runs/stage2-adapters/model`); the stage-1 base is the
same encoder without adapters. Release rule: adapters beat the base on the in-training average and
lose nothing on the overall average (`sciembed train release --check`).

{scores}

## Data and licenses
arXiv metadata (CC0), S2ORC sample (ODC-By 1.0), ACL Anthology (CC BY 4.0), AAN citation graph (AAN
terms, research use), SciTLDR (Apache-2.0). Weights: Apache-2.0, as the MiniLM starting point.

## Limits
Trained on small data (tens of thousands of examples, mostly computer science and NLP); titles only
for many ACL papers; English only; 256-token training length. Not a reproduction of SPECTER2 (6M
triplets); compare on your own tasks before relying on it. The `classification` adapter learned
computer-science categories: on biomedical (MeSH) and fields-of-study labels it is below the base
and below all-MiniLM-L6-v2, so for classification outside computer science try the `proximity`
format as well. Weights are stored in fp16.
"""


@dataclass
class RuleCheck:
    """The release rule: adapters beat the base on the in-training average and lose nothing overall."""

    base: str
    candidate: str
    base_in: float
    candidate_in: float
    base_overall: float
    candidate_overall: float

    @property
    def passed(self) -> bool:
        return self.candidate_in > self.base_in and self.candidate_overall >= self.base_overall

    def summary(self) -> str:
        verdict = "passes" if self.passed else "fails"
        return (
            f"release rule {verdict}: in-training {self.candidate_in:.2f} vs base {self.base_in:.2f}, "
            f"overall {self.candidate_overall:.2f} vs base {self.base_overall:.2f}"
        )


def _averages(entry: dict[str, Any], in_training: dict[str, bool]) -> tuple[float, float]:
    scores = {name: r["main_score"] for name, r in entry["tasks"].items() if r.get("status") == "ok"}
    missing = sorted(set(in_training) - set(scores))
    if missing:
        raise ValueError(f"{entry['spec']}: no score for {missing}; the rule needs every task")
    inside = [v for name, v in scores.items() if in_training[name]]
    return sum(inside) / len(inside), sum(scores.values()) / len(scores)


def check_release_rule(results: str | Path, base: str, candidate: str) -> RuleCheck:
    """Apply the release rule to a ``sciembed evaluate`` ``results.json`` holding ``base`` and ``candidate``
    (model specs as given to ``--model``, or the model folders' paths)."""
    data = json.loads(Path(results).read_text())
    in_training = {t["name"]: bool(t["in_training"]) for t in data["tasks"]}
    by_spec = {m["spec"]: m for m in data["models"]} | {m["name"]: m for m in data["models"]}

    def find(spec: str) -> dict[str, Any]:
        entry = by_spec.get(spec) or by_spec.get(str(Path(spec)))
        if entry is None:
            raise ValueError(f"{results}: no model {spec!r}; it has {sorted(m['spec'] for m in data['models'])}")
        return entry

    base_in, base_all = _averages(find(base), in_training)
    cand_in, cand_all = _averages(find(candidate), in_training)
    return RuleCheck(base, candidate, base_in, cand_in, base_all, cand_all)


def release_model(
    run_model: str | Path, target: str | Path, scores: str | Path | None = None, name: str = "sciembed-minilm"
) -> Path:
    """Copy a trained model folder to ``target`` in fp16 with its heads and a README model card."""
    run_model, target = Path(run_model), Path(target)
    model = load_model(run_model)
    model.config.name = name
    if target.exists():
        shutil.rmtree(target)
    save_model(model, target, dtype="fp16")
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
    (target / "README.md").write_text(CARD.format(recipe=recipe, mixture=mixture, reduction=reduction, scores=table))
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    (target / "release.json").write_text(json.dumps({"name": name, "bytes": size, "from": str(run_model)}) + "\n")
    return target
