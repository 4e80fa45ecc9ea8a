#!/usr/bin/env bash
# Rebuild our stage-1 base from scratch: mine ACL citation triplets, then train all-MiniLM-L6-v2 on them.
#
#   scripts/rebuild_base.sh                       # data from ../shared/data/acl, one process
#   NPROC=4 scripts/rebuild_base.sh               # torchrun over 4 GPUs
#   ACL_DATA=/path/to/acl scripts/rebuild_base.sh --set epochs=1     # extra args go to the trainer
#
# Mining is skipped when runs/triplets-acl/train.jsonl (or the token caches runs/gpu/*.tok.npz) exist;
# training resumes from the newest checkpoint in runs/stage1-acl-minilm (delete it to start over).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
ACL_DATA="${ACL_DATA:-../shared/data/acl}"
CONFIG="${CONFIG:-configs/stage1-acl-minilm.yaml}"
TRIPLETS="${TRIPLETS:-runs/triplets-acl}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"

if [ ! -f "$TRIPLETS/train.jsonl" ] && [ ! -f runs/gpu/train.tok.npz ]; then
  echo "== mining triplets from $ACL_DATA into $TRIPLETS"
  "$PYTHON" -m sciembed.cli mine-triplets \
    --papers "$ACL_DATA/anthology-papers.jsonl.gz" --papers "$ACL_DATA/scisummnet-papers.jsonl" \
    --edges "$ACL_DATA/aan-citations-2013.txt" --output "$TRIPLETS" --seed 42
fi

echo "== training ($CONFIG)"
if [ "${NPROC:-1}" -gt 1 ]; then
  exec "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" \
    -m sciembed.train base --config "$CONFIG" "$@"
else
  exec "$PYTHON" -m sciembed.train base --config "$CONFIG" "$@"
fi
