#!/usr/bin/env bash
# What a GPU-machine round needs, as one tar in parts that each fit one call's carry (the working tree
# is ~21 MB of the 64 MiB a call may carry): out/carry/NAME-I/NAME.parts/part-I + COUNT, I = 0, 1, ...
# `scripts/gpu_generalise.sh stage out/carry/NAME-I` (one call per part, in order) joins them into
# $STAGE/NAME once all parts are there.
#
#   scripts/gpu_bundle.sh NAME [DEST=]PATH...   e.g. scripts/gpu_bundle.sh r7 minilm=out/r7/minilm data/mixture-v4
# PART_MB (30): the size of a part.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1; shift
part_bytes=$(( ${PART_MB:-30} * 1000000 ))
work=$(mktemp -d out/.bundle-XXXXXX) parts=$(mktemp -d out/.bundle-parts-XXXXXX)
trap 'rm -rf "$work" "$parts"' EXIT
for entry in "$@"; do
  dest=${entry%%=*}; src=${entry#*=}
  [ "$dest" = "$entry" ] && dest=$(basename "$src")
  [ -e "$src" ] || { echo "gpu_bundle: $src does not exist" >&2; exit 2; }
  ln -s "$(realpath "$src")" "$work/$dest"
done
rm -rf out/carry/"$name"-*
tar -chf - -C "$work" . | split -b "$part_bytes" -d -a 1 - "$parts/part-"
n=$(ls "$parts"/part-* | wc -l)
i=0
for part in "$parts"/part-*; do
  mkdir -p "out/carry/$name-$i/$name.parts" && mv "$part" "out/carry/$name-$i/$name.parts/part-$i"
  echo "$n" > "out/carry/$name-$i/$name.parts/COUNT"; i=$((i + 1))
done
du -sh out/carry/"$name"-*
