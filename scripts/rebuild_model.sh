#!/usr/bin/env bash
# Rebuild models/sciembed-minilm (v2) from scratch with the current recipe (docs/TRAINING.md, issue 10):
# mixture v2 -> four adapters on the frozen all-MiniLM-L6-v2 (contrastive loss) -> residual scale 0.5
# -> validation suite against the start -> release (adapters only) if the release rule holds.
# Needs ../shared/data; train on a GPU (the GPU-machine variant: scripts/gpu_generalise.sh).
# Mixture v2 is what `build-mixture` wrote up to commit 3852ec0; later commits write mixture v3
# (stricter exclusions, three more tasks): for the exact v2, build it from a worktree of 3852ec0.
set -euo pipefail
cd "$(dirname "$0")/.."
SCIEMBED=${SCIEMBED:-.venv/bin/sciembed}
RUN=runs/minilm-adapters-contrastive

[ -f data/mixture-v2/stage2.yaml ] || $SCIEMBED train build-mixture --output data/mixture-v2
$SCIEMBED train adapters --config configs/generalise/minilm-adapters-contrastive.yaml --base all-minilm-l6-v2 \
  --output "$RUN"
$SCIEMBED train interpolate --tuned "$RUN/model" --adapter-scale 0.5 -o "$RUN-scale0.5/model"
$SCIEMBED evaluate -m minilm -m "$RUN-scale0.5/model" --tasks lite --reference minilm --output runs/evaluate-generalise
$SCIEMBED train release --from "$RUN-scale0.5/model" --to models/sciembed-minilm \
  --check runs/evaluate-generalise/results.json --base minilm --base-model all-minilm-l6-v2 \
  --card docs/cards/sciembed-minilm.md
