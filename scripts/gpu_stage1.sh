#!/usr/bin/env bash
# Stage-1 training and the training-speed benchmark on the GPU machine (see docs/TRAINING.md).
# Extra arguments go to `sciembed train base` (e.g. --set optim.lr=1e-5). TRAIN_BENCH_MODELS="" skips
# the speed benchmark. Expects runs/gpu/ (scripts/prepare_gpu_run.sh) carried along; writes what comes back under $OUT.
set -uo pipefail
export PYTHONPATH=src PYTHONUNBUFFERED=1
OUT=${OUT:-out/gpu-stage1}
mkdir -p "$OUT" out/stage1-misc
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
start=$(date +%s)
python -m sciembed.train base --config configs/stage1-acl-minilm.yaml \
  --set init_model=runs/gpu/minilm-fp16 --set save_dtype=fp16 "$@" 2>&1 | tee out/stage1-misc/stage1.log | grep -v "it/s" | tail -25
echo "stage-1 wall seconds: $(( $(date +%s) - start ))" | tee -a out/stage1-misc/stage1.log
cp runs/stage1-acl-minilm/{metrics.jsonl,training.png,curve.md,config.json} out/stage1-misc/ 2>/dev/null
for model in ${TRAIN_BENCH_MODELS-minilm bert-base}; do
  extra=""; [ "$model" = bert-base ] && extra="--batch-size 16"
  timeout 150 python benchmarks/train_speed.py --model $model --init runs/gpu/minilm-fp16 \
    --tokens runs/gpu/train.tok.npz --out out/stage1-misc/bench-$model $extra 2>&1 | tail -12
done
tar -cf "$OUT/misc.tar" -C out stage1-misc
tar -cf - -C runs/stage1-acl-minilm model | split -b 15000000 -d -a 1 - "$OUT/model.tar.part"
ls -la "$OUT"
