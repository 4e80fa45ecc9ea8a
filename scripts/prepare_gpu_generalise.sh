#!/usr/bin/env bash
# Prepare what scripts/gpu_generalise.sh needs on a GPU machine that has no ../shared data, no
# registry packages and no network; each folder under out/carry/ fits one call (< 55 MB + the tree):
#   out/carry/g-minilm/minilm/         all-MiniLM-L6-v2 as a model folder, weights stored fp16 (45 MB)
#   out/carry/g-data/                  $MIX/ (default mixture-v4; MIX=mixture-v3 for rounds 2-6), triplets-mix.jsonl.gz, whl/
#   out/carry/g-suite/suite.tgz        the built validation suite (sciembed-lite), compressed
#   out/carry/g-mpnet-N/mpnet.parts/   all-mpnet-base-v2 (fp16) as a tar in parts, joined there
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
SUITE="${SUITE:-.cache/sciembed-lite}"  # the default lite folder: the mixture's exclusions are read from it
MIX="${MIX:-mixture-v4}"
mkdir -p out/carry/g-minilm out/carry/g-data out/carry/g-suite
[ -f "$SUITE/tasks.jsonl" ] || "$PYTHON" -c "import sys; from sciembed.recipes import build_lite; build_lite(out_dir=sys.argv[1])" "$SUITE"
[ -d "data/$MIX" ] || "$PYTHON" -m sciembed train build-mixture --output "data/$MIX"
[ -f "runs/triplets-$MIX/train.jsonl.gz" ] || "$PYTHON" scripts/mixture_triplets.py "data/$MIX" "runs/triplets-$MIX/train.jsonl.gz"
"$PYTHON" - <<'PY'
from sciembed.model import load_model, save_model
for name, target in (("all-minilm-l6-v2", "out/carry/g-minilm/minilm"), ("all-mpnet-base-v2", "out/mpnet-fp16")):
    save_model(load_model(name), target, dtype="fp16")
    print("wrote", target)
PY
rm -rf out/carry/g-data/* out/carry/g-suite/* && cp -r "data/$MIX" "out/carry/g-data/$MIX"
cp "runs/triplets-$MIX/train.jsonl.gz" out/carry/g-data/triplets-mix.jsonl.gz
mkdir -p out/carry/g-data/whl && cp .whl/pytrec_eval_terrier-*.whl .whl/bm25s-*.whl out/carry/g-data/whl/
tar -czf out/carry/g-suite/suite.tgz -C "$(dirname "$SUITE")" "$(basename "$SUITE")"
rm -rf out/carry/g-mpnet-*
tar -cf - -C out/mpnet-fp16 . | split -b 55000000 -d -a 1 - out/mpnet.tar.part-
n=$(ls out/mpnet.tar.part-* | wc -l)
i=0
for part in out/mpnet.tar.part-*; do
  mkdir -p "out/carry/g-mpnet-$i/mpnet.parts" && mv "$part" "out/carry/g-mpnet-$i/mpnet.parts/part-$i"
  echo "$n" > "out/carry/g-mpnet-$i/mpnet.parts/COUNT"; i=$((i + 1))
done
du -sh out/carry/*
