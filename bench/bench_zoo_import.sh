#!/usr/bin/env bash
# Import time and memory of every model of the torchvision zoo
# (tests/fixtures/onnx_models/make_zoo.py), one bench_onnx_import run each:
# seconds per 100 MB of weights and peak resident growth over the weights.
#
#   bench/bench_zoo_import.sh BUILD_DIR ZOO_DIR [REPS]
#
# ZOO_DIR holds NAME.onnx files (make_zoo.py ZOO_DIR writes them).
set -euo pipefail
build=${1:?usage: bench_zoo_import.sh BUILD_DIR ZOO_DIR [REPS]}
zoo=${2:?usage: bench_zoo_import.sh BUILD_DIR ZOO_DIR [REPS]}
reps=${3:-3}
printf '| model | weights MB | import s | s per 100 MB | reading the file alone s | peak growth / weights |\n'
printf '|---|---|---|---|---|---|\n'
for f in "$zoo"/*.onnx; do
  name=$(basename "$f" .onnx)
  if ! out=$("$build/bench/bench_onnx_import" "$f" "$reps" 2>&1); then
    printf '| %s | — | %s | | | |\n' "$name" "$(echo "$out" | tail -n 1 | cut -c1-80)"
    continue
  fi
  mb=$(echo "$out" | sed -n 's/.*weights \([0-9.]*\) MB.*/\1/p')
  imp=$(echo "$out" | sed -n 's/.*median of [0-9]*: \([0-9.]*\) s.*/\1/p')
  rd=$(echo "$out" | sed -n 's/.*file alone: \([0-9.]*\) s.*/\1/p')
  peak=$(echo "$out" | sed -n 's/.*= \([0-9.]*\)x the weights.*/\1/p')
  per=$(awk -v t="$imp" -v m="$mb" 'BEGIN { printf "%.3f", (m > 0) ? (t * 100 / m) : 0 }')
  printf '| %s | %s | %s | %s | %s | %sx |\n' "$name" "$mb" "$imp" "$per" "$rd" "$peak"
done
