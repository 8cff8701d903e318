#!/usr/bin/env bash
# ONNX Runtime (npm onnxruntime-node, CPU) on the committed ONNX fixtures
# (tests/fixtures/onnx_models/cases, exported by torch), compared with
# torch's outputs within 1e-4; and on the torchvision exports of
# make_torchvision.py when torch and torchvision are importable. This checks
# the fixtures the importer is tested with, and the runner that will check
# the files nnic exports.
#
# Skips (77) when node/npm are missing or the package cannot be installed.
# Cases ending in _eval are skipped here: they hold a training-form file
# with the output nnic must give in eval mode, which is not what the file
# means to ONNX Runtime (batch statistics; the _train twin checks that).
set -euo pipefail
src=${NNIC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
cases=${NNIC_ONNX_CASES:-$src/tests/fixtures/onnx_models/cases}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
compare="$py $src/tests/onnx_runtime/compare.py"

# shellcheck source=tests/onnx_runtime/ort.sh
. "$src/tests/onnx_runtime/ort.sh"
if ! "$py" -c 'import numpy' 2> /dev/null; then
  echo "SKIP: python3 with numpy is needed for the comparison"
  exit 77
fi
t0=$SECONDS
if ! ort_setup; then
  echo "SKIP: $ORT_SKIP_REASON"
  exit 77
fi
echo "onnxruntime-node from $NODE_PATH ($((SECONDS - t0)) s to set up)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0 skipped=0
check () { # name model input expected.npy
  local name=$1 model=$2 input=$3 want=$4 log
  if ! log=$(ort_run "$model" "$input" "$tmp/got.npy" 2>&1); then
    echo "FAIL $name: onnxruntime: $log"
    failed=$((failed + 1))
    return
  fi
  if log=$($compare "$tmp/got.npy" "$want" 1e-4 1e-4 2>&1); then
    echo "PASS $name: $log"
    passed=$((passed + 1))
  else
    echo "FAIL $name: $log"
    failed=$((failed + 1))
  fi
}

if [ ! -d "$cases" ]; then
  echo "FAIL: no fixtures at $cases"
  exit 1
fi
for d in "$cases"/test_*/; do
  name=$(basename "$d")
  if [[ $name == *_eval ]]; then
    echo "SKIP $name: an nnic-only expectation (eval mode of a training-form file)"
    skipped=$((skipped + 1))
    continue
  fi
  ort_pb_to_npy "$d/test_data_set_0/output_0.pb" "$tmp/want.npy"
  check "$name" "$d/model.onnx" "$d/test_data_set_0/input_0.pb" "$tmp/want.npy"
done

if "$py" -c 'import torch, torchvision, onnx' 2> /dev/null; then
  t1=$SECONDS
  "$py" "$src/tests/fixtures/onnx_models/make_torchvision.py" "$tmp/tv" > "$tmp/tv.log" 2>&1 || {
    cat "$tmp/tv.log"
    echo "FAIL: make_torchvision.py"
    exit 1
  }
  echo "torchvision exports written in $((SECONDS - t1)) s"
  while read -r name eval_onnx train_onnx input output; do
    check "$name (eval export)" "$tmp/tv/$eval_onnx" "$tmp/tv/$input" "$tmp/tv/$output"
    if [ -f "$tmp/tv/${name}_output_train.npy" ]; then
      check "$name (training-form export, batch statistics)" "$tmp/tv/$train_onnx" "$tmp/tv/$input" \
        "$tmp/tv/${name}_output_train.npy"
    fi
  done < "$tmp/tv/manifest.txt"
else
  echo "SKIP torchvision exports: python3 cannot import torch, torchvision and onnx"
  skipped=$((skipped + 1))
fi

echo "onnxruntime: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
