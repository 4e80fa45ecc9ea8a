#!/usr/bin/env bash
# Stage 2 on the GPU machine: the adapters and the multi-task baseline, both from the stage-1 base.
# Carry runs/stage1-acl-minilm/model and data/mixture (`sciembed train build-mixture`); extra
# arguments go to both `sciembed train` commands (e.g. --set optim.lr=3e-4).
# What comes back under $OUT: misc.tar (logs, curves, summaries) and each model as tar parts.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu-stage2}
BASE=${BASE:-runs/stage1-acl-minilm/model}
MODES=${MODES:-adapters multitask}
mkdir -p "$OUT" out/stage2-misc
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
for mode in $MODES; do
  start=$(date +%s)
  python -m sciembed.cli train "$mode" --config "configs/stage2-$mode.yaml" --base "$BASE" \
    -o "runs/stage2-$mode" --set save_dtype=fp16 --set progress=false "$@" 2>&1 \
    | tee "out/stage2-misc/$mode.log" | tail -8
  echo "$mode wall seconds: $(( $(date +%s) - start ))" | tee -a "out/stage2-misc/$mode.log"
  mkdir -p "out/stage2-misc/$mode"
  cp runs/stage2-$mode/{metrics.jsonl,curves.png,training.png,curve.md,summary.json,stage2.yaml} \
    "out/stage2-misc/$mode/" 2>/dev/null
  tar -cf - -C "runs/stage2-$mode" model | split -b 15000000 -d -a 1 - "$OUT/$mode.tar.part"
done
tar -cf "$OUT/misc.tar" -C out stage2-misc
ls -la "$OUT"
