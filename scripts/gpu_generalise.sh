#!/usr/bin/env bash
# Issue 10 on the GPU machine: train every recipe candidate in parallel on one GPU, derive the
# interpolated ones, evaluate them all on the validation suite (embeddings on the GPU, SVMs and
# trec_eval on the CPU cores), and send back results and the trained adapters (small).
#
#   scripts/gpu_generalise.sh stage  DIR...    copy carried folders into $STAGE (several calls: 64 MiB each)
#   scripts/gpu_generalise.sh train  BASE TAG  train the candidates of $RECIPES from BASE (a model folder)
#   scripts/gpu_generalise.sh eval   BASE TAG  evaluate BASE and every candidate of TAG on $STAGE/suite
#
# Made here by scripts/prepare_gpu_generalise.sh (MiniLM/MPNet bases, mixture v4, stage-1 triplets,
# the built suite, wheels for pytrec-eval and bm25s). Results: docs/TRAINING.md.
# MIX: the mixture folder under $STAGE; TRAIN_SET: extra `--set key=value` settings for every run,
# e.g. TRAIN_SET="max_steps=420 time_budget_s=290" (stage 2 stops and saves at the time budget).
set -uo pipefail
# parallel trainings share the cores: tokenisers single-threaded unless TOKENIZERS_PARALLELISM says otherwise
export PYTHONPATH=src PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=${TOKENIZERS_PARALLELISM:-false}
STAGE=${STAGE:-/root/stage}
RUNS=${RUNS:-/root/runs}
OUT=${OUT:-out/gpu-generalise}
MIX=${MIX:-mixture-v4}
TRAIN_SET=${TRAIN_SET:-}
RECIPES=${RECIPES:-adapters-margin adapters-contrastive stage1-contrastive stage1-contrastive-distill}
mkdir -p "$STAGE" "$RUNS" "$OUT"

wheels() {
  if [ -d "$STAGE/whl" ] && [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$STAGE"/whl/*.whl
  fi
  export PYTHONPATH=src:/tmp/site
}

stage() {
  for dir in "$@"; do
    cp -r "$dir"/. "$STAGE"/
  done
  if [ -f "$STAGE/suite.tgz" ]; then
    rm -rf "$STAGE/suite" && mkdir -p "$STAGE/suite" && tar -xzf "$STAGE/suite.tgz" -C "$STAGE/suite" --strip-components=1 \
      && rm "$STAGE/suite.tgz"
  fi
  # a base carried in parts (over several calls) is joined once all parts are there
  for joined in "$STAGE"/*.parts; do
    [ -d "$joined" ] || continue
    name=$(basename "$joined" .parts)
    if [ -f "$joined/COUNT" ] && [ "$(ls "$joined"/part-* | wc -l)" = "$(cat "$joined/COUNT")" ]; then
      mkdir -p "$STAGE/$name" && cat "$joined"/part-* | tar -xf - -C "$STAGE/$name" && rm -r "$joined"
    fi
  done
  du -sh "$STAGE"/* 2>/dev/null
}

train_one() {  # recipe base tag
  local recipe=$1 base=$2 tag=$3 run="$RUNS/$3-$1" start extra=()
  start=$(date +%s)
  for setting in $TRAIN_SET; do extra+=(--set "$setting"); done
  case $recipe in
    adapters-*)
      python3 -m sciembed train adapters --config "configs/generalise/$tag-$recipe.yaml" --base "$base" -o "$run" \
        --set mixture="$STAGE/$MIX" --set progress=false "${extra[@]}" ;;
    stage1-*)
      python3 -m sciembed train base --config "configs/generalise/stage1-mix-$tag-${recipe#stage1-}.yaml" \
        --set init_model="$base" --set train_triplets="$STAGE/triplets-mix.jsonl.gz" --set output_dir="$run" \
        --set progress=false "${extra[@]}" ;;
  esac > "$OUT/$tag-$recipe.log" 2>&1
  echo "$tag-$recipe: exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/$tag-$recipe.log"
}

train() {  # base tag
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  for recipe in $RECIPES; do train_one "$recipe" "$1" "$2" & sleep 2; done
  wait
  for recipe in $RECIPES; do tail -3 "$OUT/$2-$recipe.log"; done
  # derived candidates: weight-space interpolation of the fully tuned bases, scaled adapters
  # (runs that are themselves derived are skipped, so a second `train` does not derive from them)
  for run in "$RUNS/$2"-stage1-*; do
    case $run in *-wise0.5) continue ;; esac
    [ -d "$run/model" ] && python3 -m sciembed train interpolate --start "$1" --tuned "$run/model" --alpha 0.5 \
      -o "$run-wise0.5/model" >> "$OUT/derive.log" 2>&1
  done
  for run in "$RUNS/$2"-adapters-*; do
    case $run in *-scale0.5) continue ;; esac
    [ -d "$run/model" ] && python3 -m sciembed train interpolate --tuned "$run/model" --adapter-scale 0.5 \
      -o "$run-scale0.5/model" >> "$OUT/derive.log" 2>&1
  done
  tail -5 "$OUT/derive.log"
  # what comes back: each candidate's adapters, config and training curves (the bases stay here)
  tar -cf "$OUT/$2-runs.tar" -C "$RUNS" --exclude='*/checkpoints' --exclude='model.safetensors' \
    --exclude='tokenizer*' --exclude='vocab.txt' $(cd "$RUNS" && ls -d "$2"-*)
  ls -la "$OUT"
}

evaluate() {  # base tag
  wheels
  local models=(-m "$1")
  for run in "$RUNS/$2"-*; do [ -d "$run/model" ] && models+=(-m "$run/model"); done
  python3 -m sciembed evaluate "${models[@]}" --tasks "$STAGE/suite/tasks.jsonl" --output "$OUT/eval-$2" \
    --device cuda --batch-size 256 --n-jobs 16 --cache-dir "$RUNS/cache" 2>&1 | tail -60
  ls -la "$OUT/eval-$2"
}

# ---- recipe L-distill (issue 10): stage 1 as a low-rank delta over the frozen base, adapters on top ------
#   scripts/gpu_generalise.sh lora      BASE TAG  low-rank stage 1 over the frozen BASE (contrastive +
#                                                 distillation), contrastive adapters on top, candidates at
#                                                 adapter scale 0.5 with delta scale 1.0 / 0.5
#   scripts/gpu_generalise.sh eval-lora BASE TAG  evaluate BASE and the L-distill candidates only
#   scripts/gpu_generalise.sh pack-lora TAG CAND  one candidate's weights (delta, adapters, heads) into $OUT in
#                                                 15 MB parts, where the lora tar was too large to hold them
# The mixture: $STAGE/$MIX (default mixture-v4; rounds 2-6 ran MIX=mixture-v3) where staged, else
# $STAGE/mixture-v2. LORA_EXTRA=1: two more
# candidates (full adapters; the delta alone at 0.5). LORA_ADAPTER_BUDGET (240): seconds after which stage 2
# stops and saves (a safety net for the call's time; the log says so); LORA_ADAPTER_EPOCHS: fewer epochs;
# LORA_ADAPTER_STEPS: stage 2's schedule laid out over this many steps (so that it ends, learning rate
# decayed, inside the budget: MPNet runs ~1.4 steps/s; its configs say 380, for a 300 s budget). Stage 1 stops and
# saves at its config's time_budget_s where it has one (MPNet: 180 s), or at LORA_BASE_BUDGET seconds.
# SMOKE=1: two (small) steps per training, a CPU rehearsal.
lora_mixture() {
  local mix="$STAGE/${MIX:-mixture-v4}"
  [ -d "$mix" ] || mix="$STAGE/mixture-v2"
  echo "$mix"
}

lora_candidates() {  # tag: the candidate model folders, in evaluation order
  local run="$RUNS/$1-lora-distill"
  echo "$run/model" "$run-adapters-scale0.5/model" "$run-adapters-scale0.5-delta0.5/model"
  [ -n "${LORA_EXTRA:-}" ] && echo "$run-adapters/model" "$run-delta0.5/model"
  return 0
}

lora() {  # base tag
  local base=$1 tag=$2 run="$RUNS/$2-lora-distill" mix start
  mix=$(lora_mixture)
  echo "mixture: $mix"
  LORA_NAME=lora-distill LORA_BASE_SET="${LORA_BASE_BUDGET:+time_budget_s=$LORA_BASE_BUDGET}" \
    lora_base "$base" "$tag" || return 1
  start=$(date +%s)
  python3 -m sciembed train adapters --config "configs/generalise/$tag-adapters-contrastive.yaml" \
    --base "$run/model" -o "$run-adapters" --set mixture="$mix" --set progress=false \
    --set time_budget_s="${LORA_ADAPTER_BUDGET:-240}" \
    ${LORA_ADAPTER_EPOCHS:+--epochs "$LORA_ADAPTER_EPOCHS"} ${LORA_ADAPTER_STEPS:+--max-steps "$LORA_ADAPTER_STEPS"} \
    ${SMOKE:+--max-steps 2 --batch-size 16} \
    > "$OUT/$tag-lora-distill-adapters.log" 2>&1
  echo "$tag-lora-distill-adapters (stage 2): exit $? after $(( $(date +%s) - start )) s" \
    | tee -a "$OUT/$tag-lora-distill-adapters.log"
  tail -2 "$OUT/$tag-lora-distill-adapters.log"
  [ -d "$run-adapters/model" ] || { echo "no adapters written: see $OUT/$tag-lora-distill-adapters.log" >&2; return 1; }
  # WiSE-style candidates: the adapters at half their residual, the delta at 1.0 and 0.5
  python3 -m sciembed train interpolate --tuned "$run-adapters/model" --adapter-scale 0.5 \
    -o "$run-adapters-scale0.5/model" >> "$OUT/derive-lora.log" 2>&1
  python3 -m sciembed train interpolate --tuned "$run-adapters/model" --adapter-scale 0.5 --delta-scale 0.5 \
    -o "$run-adapters-scale0.5-delta0.5/model" >> "$OUT/derive-lora.log" 2>&1
  if [ -n "${LORA_EXTRA:-}" ]; then
    python3 -m sciembed train interpolate --tuned "$run/model" --delta-scale 0.5 -o "$run-delta0.5/model" \
      >> "$OUT/derive-lora.log" 2>&1
  fi
  tail -4 "$OUT/derive-lora.log"
  # what comes back: deltas (fp16 factors), adapters, heads, configs and curves; not the merged bases. A file
  # comes back only up to 16 MiB: where the weights make it larger (MPNet: ~65 MB), the tar holds configs,
  # logs and curves only, and `pack-lora TAG CANDIDATE` sends one candidate's weights in 15 MB parts.
  local runs
  runs=$(cd "$RUNS" && ls -d "$tag"-lora-distill*)
  tar -cf "$OUT/$tag-lora-runs.tar" -C "$RUNS" "${LORA_TAR_EXCLUDES[@]}" $runs
  if [ "$(stat -c %s "$OUT/$tag-lora-runs.tar")" -gt 15000000 ]; then
    tar -cf "$OUT/$tag-lora-runs.tar" -C "$RUNS" "${LORA_TAR_EXCLUDES[@]}" --exclude='*.safetensors' $runs
    echo "weights left out of $tag-lora-runs.tar (over 15 MB): scripts/gpu_generalise.sh pack-lora $tag CANDIDATE"
  fi
  ls -la "$OUT"
}

# what a candidate needs to ship (scripts/gpu_generalise.sh pack-lora TAG CANDIDATE, e.g. pack-lora mpnet
# mpnet-lora-distill-adapters-scale0.5): delta/, adapters/ (safetensors), heads/, configs, curves
LORA_TAR_EXCLUDES=(--exclude='*/checkpoints' --exclude='model.safetensors' --exclude='tokenizer*'
  --exclude='vocab.txt' --exclude='pytorch_adapter.bin')
pack_lora() {  # tag candidate: the run folder $RUNS/CANDIDATE in parts of 15 MB ($OUT/CANDIDATE.tar.part0, 1 ...)
  local tag=$1 name=$2
  case $name in "$tag"-lora-distill*) ;; *) echo "pack-lora: $name is not a $tag-lora-distill run" >&2; return 2 ;; esac
  [ -d "$RUNS/$name/model" ] || { echo "pack-lora: no $RUNS/$name/model" >&2; return 1; }
  tar -cf - -C "$RUNS" "${LORA_TAR_EXCLUDES[@]}" "$name" | split -b 15000000 -d -a 1 - "$OUT/$name.tar.part"
  ls -la "$OUT"
  echo "join: cat $name.tar.part* | tar -xf -   then: sciembed train release --from $name/model --base-model BASE ..."
}

evaluate_lora() {  # base tag
  wheels
  local models=(-m "$1") folder
  for folder in $(lora_candidates "$2"); do [ -d "$folder" ] && models+=(-m "$folder"); done
  python3 -m sciembed evaluate "${models[@]}" --tasks "$STAGE/suite/tasks.jsonl" --output "$OUT/eval-$2-lora" \
    --device cuda --batch-size 256 --n-jobs 16 --cache-dir "$RUNS/cache" 2>&1 | tail -60
  ls -la "$OUT/eval-$2-lora"
}

# ---- round 6 (issue 10): L-distill with more capacity, stage 1 and stage 2 in separate calls ------------
#   scripts/gpu_generalise.sh lora-base     BASE TAG  stage 1 only: $RUNS/TAG-$LORA_NAME from the config of
#                                                     recipe lora-distill with $LORA_BASE_SET (--set k=v ...)
#   scripts/gpu_generalise.sh lora-adapters BASE TAG  stage 2 variants in parallel over that delta: for each
#                                                     NAME=k=v,k=v in $ADAPTER_VARIANTS (NAME= alone: the
#                                                     config as it is) $RUNS/TAG-$LORA_NAME-adapters-NAME,
#                                                     then its adapter-scale 0.5 candidate
#   scripts/gpu_generalise.sh eval-runs     BASE TAG RUN...  evaluate BASE and $RUNS/RUN/model of each RUN
# LORA_NAME (lora64-distill), LORA_BASE_SET, ADAPTER_VARIANTS, LORA_ADAPTER_BUDGET (500 s); SMOKE=1 as above.
lora_base() {  # base tag
  local base=$1 tag=$2 name=${LORA_NAME:-lora64-distill} start extra=()
  local run="$RUNS/$tag-$name"
  for setting in ${LORA_BASE_SET:-}; do extra+=(--set "$setting"); done
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  start=$(date +%s)
  python3 -m sciembed train base --config "configs/generalise/stage1-mix-$tag-lora-distill.yaml" \
    --set init_model="$base" --set train_triplets="$STAGE/triplets-mix.jsonl.gz" --set output_dir="$run" \
    --set progress=false "${extra[@]}" ${SMOKE:+--set max_steps=2} > "$OUT/$tag-$name.log" 2>&1
  echo "$tag-$name (stage 1): exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/$tag-$name.log"
  tail -4 "$OUT/$tag-$name.log"
  [ -d "$run/model/delta" ] || { echo "no delta written: see $OUT/$tag-$name.log" >&2; return 1; }
}

adapter_variant() {  # delta_run variant_spec tag
  local delta=$1 spec=$2 tag=$3 vname settings extra=() start mix
  vname=${spec%%=*}; settings=${spec#*=}
  mix=$(lora_mixture)
  for setting in ${settings//,/ }; do extra+=(--set "$setting"); done
  local out="$delta-adapters${vname:+-$vname}"
  start=$(date +%s)
  python3 -m sciembed train adapters --config "configs/generalise/$tag-adapters-contrastive.yaml" \
    --base "$delta/model" -o "$out" --set mixture="$mix" --set progress=false \
    --set time_budget_s="${LORA_ADAPTER_BUDGET:-500}" "${extra[@]}" ${SMOKE:+--max-steps 2 --batch-size 16} \
    > "$OUT/$(basename "$out").log" 2>&1
  echo "$(basename "$out") (stage 2): exit $? after $(( $(date +%s) - start )) s" | tee -a "$OUT/$(basename "$out").log"
  [ -d "$out/model" ] && python3 -m sciembed train interpolate --tuned "$out/model" --adapter-scale 0.5 \
    -o "$out-scale0.5/model" >> "$OUT/derive-$(basename "$out").log" 2>&1
}

lora_adapters() {  # base tag
  local tag=$2 name=${LORA_NAME:-lora64-distill} spec
  local delta="$RUNS/$tag-$name"
  [ -d "$delta/model/delta" ] || { echo "no stage-1 delta at $delta: run lora-base first" >&2; return 1; }
  for spec in ${ADAPTER_VARIANTS:-=}; do adapter_variant "$delta" "$spec" "$tag" & sleep 2; done
  wait
  for log in "$OUT"/"$tag-$name"-adapters*.log; do tail -2 "$log"; done
  local runs
  runs=$(cd "$RUNS" && ls -d "$tag-$name"*)
  # the stage-1 delta once: every adapter run (and its scaled copy) holds the same file
  tar -cf "$OUT/$tag-$name-runs.tar" -C "$RUNS" "${LORA_TAR_EXCLUDES[@]}" \
    --exclude='*-adapters*/model/delta/delta.safetensors' $runs
  ls -la "$OUT"
}

evaluate_runs() {  # base tag run...
  wheels
  local base=$1 tag=$2 models=(-m "$1") run
  shift 2
  for run in "$@"; do models+=(-m "$RUNS/$run/model"); done
  python3 -m sciembed evaluate "${models[@]}" --tasks "$STAGE/suite/tasks.jsonl" --output "$OUT/eval-$tag-runs" \
    --device cuda --batch-size 256 --n-jobs 16 --cache-dir "$RUNS/cache" 2>&1 | tail -60
  ls -la "$OUT/eval-$tag-runs"
}

case ${1:-} in
  stage) shift; stage "$@" ;;
  train) train "$2" "$3" ;;
  eval) evaluate "$2" "$3" ;;
  lora) lora "$2" "$3" ;;
  eval-lora) evaluate_lora "$2" "$3" ;;
  pack-lora) pack_lora "$2" "$3" ;;
  lora-base) lora_base "$2" "$3" ;;
  lora-adapters) lora_adapters "$2" "$3" ;;
  eval-runs) shift; evaluate_runs "$@" ;;
  *) echo "usage: $0 stage DIR... | train BASE TAG | eval BASE TAG | lora BASE TAG | eval-lora BASE TAG" \
       "| lora-base BASE TAG | lora-adapters BASE TAG | eval-runs BASE TAG RUN..." \
       "| pack-lora TAG CANDIDATE" >&2; exit 2 ;;
esac
