#!/usr/bin/env bash
# Prepare runs/gpu/ (< 64 MiB) for a GPU machine that has no ../shared data and no MiniLM package:
#   runs/gpu/minilm-fp16/   all-MiniLM-L6-v2 as a sciembed model folder, weights stored in fp16 (~44 MB;
#                           loaded back as fp32 for training)
#   runs/gpu/train.tok.npz  pre-tokenised training triplets (the triplet files themselves stay here)
#   runs/gpu/dev.tok.npz    pre-tokenised dev triplets
# Then, on the GPU machine (carry runs/gpu):
#   PYTHONPATH=src python -m sciembed.train base --config configs/stage1-acl-minilm.yaml \
#       --set init_model=runs/gpu/minilm-fp16
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
ACL_DATA="${ACL_DATA:-../shared/data/acl}"
CONFIG="${CONFIG:-configs/stage1-acl-minilm.yaml}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"

if [ ! -f runs/triplets-acl/train.jsonl ]; then
  "$PYTHON" -m sciembed.cli mine-triplets \
    --papers "$ACL_DATA/anthology-papers.jsonl.gz" --papers "$ACL_DATA/scisummnet-papers.jsonl" \
    --edges "$ACL_DATA/aan-citations-2013.txt" --output runs/triplets-acl --seed 42
fi
"$PYTHON" - <<'PY'
from sciembed.model import load_model, save_model
model = load_model("all-minilm-l6-v2")
save_model(model, "runs/gpu/minilm-fp16", dtype="fp16")
print("wrote runs/gpu/minilm-fp16")
PY
# the token caches are keyed by tokenizer + max_length, so the fp16 folder's (identical) tokenizer reuses them
"$PYTHON" -m sciembed.train tokenize --config "$CONFIG" --set init_model=runs/gpu/minilm-fp16
du -sh runs/gpu
