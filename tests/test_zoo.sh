#!/usr/bin/env bash
# Every torchvision classifier family through the whole pipeline (issue 10):
# for the smallest member of each family (tests/fixtures/onnx_models/make_zoo.py:
# random seeded weights, eval-mode export by torch 1.13 at opset 17 with a
# dynamic batch axis), nnic must
#   1. import it and reproduce torch's output (nnic infer) within 1e-4 of
#      the output's peak;
#   2. train it one step and prune it with l1filter at sparsity 0.3 in
#      dependency-aware mode (nnic compress --finetune-epochs 1 on the two
#      test images with made-up labels: one SGD step), and export the
#      pruned model (--export-onnx);
#   3. give, on the export, the output ONNX Runtime gives on it (within 1e-4
#      of the peak), and the tied channels must be pruned alike (the
#      report's per-layer sparsity is checked for a sane range).
# One line per family and step, PASS/FAIL/SKIP, then a summary.
#
# Usage: test_zoo.sh NNIC_CLI
# Skips (77) without python3-torchvision/onnx, or without ONNX Runtime for
# step 3 (then steps 1-2 still run).
# NNIC_ZOO_MODELS=resnet18,... picks models; NNIC_ZOO_DIR=DIR reuses (or
# keeps) the exports there instead of a temporary folder (make_zoo.py takes
# 5 to 10 minutes for all of them).
set -uo pipefail
nnic=${1:?usage: test_zoo.sh NNIC_CLI}
src=${NNIC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
py=/usr/bin/python3
[ -x "$py" ] || py=python3
compare="$py $src/tests/onnx_runtime/compare.py"

for mod in torch torchvision onnx numpy; do
  if ! "$py" -c "import $mod" 2> /dev/null; then
    echo "SKIP: $py cannot import $mod (apt-get install python3-torchvision python3-onnx)"
    exit 77
  fi
done

all="alexnet,convnext_tiny,densenet121,efficientnet_b0,efficientnet_v2_s,googlenet,inception_v3,maxvit_t,mnasnet0_5,mobilenet_v2,mobilenet_v3_small,regnet_x_400mf,regnet_y_400mf,resnet18,resnext50_32x4d,shufflenet_v2_x0_5,squeezenet1_1,swin_t,vgg11_bn,vit_b_32,wide_resnet50_2,lenet5"
models=${NNIC_ZOO_MODELS:-$all}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
zoo=${NNIC_ZOO_DIR:-$tmp/zoo}
mkdir -p "$zoo"
missing=""
for m in ${models//,/ }; do
  [ -f "$zoo/$m.onnx" ] && [ -f "$zoo/$m.out.npy" ] || missing="$missing,$m"
done
if [ -n "$missing" ]; then
  start=$SECONDS
  if ! "$py" "$src/tests/fixtures/onnx_models/make_zoo.py" "$zoo" --models "${missing#,}" \
       > "$tmp/make.log" 2>&1; then
    cat "$tmp/make.log"
    echo "FAIL: make_zoo.py"
    exit 1
  fi
  echo "exports of ${missing#,} written in $((SECONDS - start)) s"
fi

# shellcheck source=tests/onnx_runtime/ort.sh
. "$src/tests/onnx_runtime/ort.sh"
have_ort=1
if ! ort_setup > "$tmp/ort.log" 2>&1; then
  have_ort=0
  echo "SKIP step 3 (ONNX Runtime): $ORT_SKIP_REASON"
fi

# Families that do not get through every step yet, and why: their failures
# are reported (KNOWN) but do not fail the test; the README's table says
# the same. A family that passes while listed here is reported too.
declare -A known=(
)

passed=0 failed=0 skipped=0 known_failed=0
declare -A result
pass () { echo "PASS $1: $2"; passed=$((passed + 1)); }
fail () {
  local family=${1%% *}
  if [ -n "${known[$family]:-}" ]; then
    echo "KNOWN $1: $2 (${known[$family]})"
    known_failed=$((known_failed + 1))
  else
    echo "FAIL $1: $2"
    failed=$((failed + 1))
  fi
}

# What l1filter prunes: the convolutions (NNI's L1FilterPruner takes
# Conv2d only; in ViT and Swin that is the patch embedding, whose channels
# the residual stream ties to every block's output projections).
config () {
  echo '[{"sparsity": 0.3, "op_types": ["Conv2d"]}]'
}

for m in ${models//,/ }; do
  onnx=$zoo/$m.onnx in=$zoo/$m.in.npy want=$zoo/$m.out.npy
  t=$SECONDS
  # 1. import and reproduce torch
  if ! log=$("$nnic" infer --model "$onnx" --input "$in" --out "$tmp/$m.got.npy" 2>&1); then
    fail "$m import" "$(echo "$log" | tail -n 1)"
    result[$m]="import fails"
    continue
  fi
  if ! log=$($compare "$tmp/$m.got.npy" "$want" 0 0 1e-4 2>&1); then
    fail "$m import" "torch's output not reproduced: $log"
    result[$m]="output differs"
    continue
  fi
  pass "$m import" "$log ($((SECONDS - t)) s)"
  # 2. one training step, dependency-aware l1filter at 0.3, export
  t=$SECONDS
  "$py" -c "import numpy as np; n = np.load('$want').shape; np.save('$tmp/$m.y.npy', (np.arange(n[0]) % n[1]).astype(np.int64))"
  config "$m" > "$tmp/$m.json"
  rm -rf "$tmp/$m.out"
  if ! log=$("$nnic" compress --model "$onnx" --config "$tmp/$m.json" --algorithm l1filter \
               --dependency-aware --finetune-epochs 1 --batch-size 2 --lr 0.001 \
               --data "$in,$tmp/$m.y.npy" --export-onnx "$tmp/$m.pruned.onnx" \
               --out "$tmp/$m.out" 2>&1); then
    fail "$m compress" "$(echo "$log" | tail -n 2 | tr '\n' ' ')"
    result[$m]="imports; compress fails"
    continue
  fi
  if ! log=$("$py" "$src/tests/onnx_runtime/check_zoo_pruned.py" "$tmp/$m.pruned.onnx" 0.3 2>&1); then
    fail "$m compress" "$log"
    result[$m]="imports; pruning wrong"
    continue
  fi
  pass "$m compress" "$log ($((SECONDS - t)) s)"
  # 3. ONNX Runtime on the export agrees with nnic on it
  if [ "$have_ort" = 0 ]; then
    skipped=$((skipped + 1))
    result[$m]="imports, trains, prunes, exports (ONNX Runtime not run)"
    continue
  fi
  t=$SECONDS
  if ! log=$("$nnic" infer --model "$tmp/$m.pruned.onnx" --input "$in" --out "$tmp/$m.nnic.npy" 2>&1); then
    fail "$m export" "nnic cannot read its export: $(echo "$log" | tail -n 1)"
    result[$m]="exports; re-import fails"
    continue
  fi
  if ! log=$(ort_run "$tmp/$m.pruned.onnx" "$in" "$tmp/$m.ort.npy" 2>&1); then
    fail "$m export" "onnxruntime: $(echo "$log" | tail -n 2 | tr '\n' ' ')"
    result[$m]="exports; ONNX Runtime fails"
    continue
  fi
  if ! log=$($compare "$tmp/$m.nnic.npy" "$tmp/$m.ort.npy" 0 0 1e-4 2>&1); then
    fail "$m export" "ONNX Runtime differs: $log"
    result[$m]="exports; ONNX Runtime differs"
    continue
  fi
  pass "$m export" "ONNX Runtime agrees: $log ($((SECONDS - t)) s)"
  result[$m]="all steps"
  rm -f "$tmp/$m".*.npy "$tmp/$m.pruned.onnx"
done

echo "== families:"
for m in ${models//,/ }; do
  note=""
  if [ -n "${known[$m]:-}" ] && [ "${result[$m]:-}" = "all steps" ]; then
    note=" (listed as known to fail: take it off the list in $0)"
  fi
  echo "  $m: ${result[$m]:-}$note"
done
echo "zoo: $passed passed, $failed failed, $known_failed known failures, $skipped skipped"
[ "$failed" -eq 0 ]
