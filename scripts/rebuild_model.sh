#!/usr/bin/env bash
# Rebuild models/sciembed-minilm from scratch: mixture -> stage 1 -> stage 2 (adapters + multi-task
# baseline) -> sciembed-lite evaluation -> release. Steps needing ../shared/data (mixture, stage-1
# triplets, evaluation) run where it exists; training runs on a GPU when there is one.
# Usage: scripts/rebuild_model.sh [STAGE1_MODEL]   (default: runs/stage1-acl-minilm/model, trained here
# by scripts/rebuild_base.sh if missing). The release step publishes only if the rule in docs/TRAINING.md
# holds (adapters beat the base on the in-training average and lose nothing overall); else it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
SCIEMBED=${SCIEMBED:-.venv/bin/sciembed}
BASE=${1:-runs/stage1-acl-minilm/model}

[ -f data/mixture/stage2.yaml ] || $SCIEMBED train build-mixture --output data/mixture
if [ ! -f "$BASE/sciembed.json" ]; then
  scripts/rebuild_base.sh
fi
$SCIEMBED train adapters  --config configs/stage2-adapters.yaml  --base "$BASE" --output runs/stage2-adapters
$SCIEMBED train multitask --config configs/stage2-multitask.yaml --base "$BASE" --output runs/stage2-multitask
$SCIEMBED evaluate -m minilm -m "$BASE" -m runs/stage2-multitask/model -m runs/stage2-adapters/model -m bm25 \
  --tasks lite --output runs/evaluate-stage2
$SCIEMBED train release --from runs/stage2-adapters/model --to models/sciembed-minilm \
  --scores runs/evaluate-stage2/results.md --check runs/evaluate-stage2/results.json --base "$BASE"
