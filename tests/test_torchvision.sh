#!/usr/bin/env bash
# torchvision networks (ResNet-18, MobileNetV2, a small VGG; random seeded
# weights) exported by torch to ONNX, imported and run by nnic:
#   nnic infer --model NAME.onnx --input NAME_input.npy --out got.npy
# must give torch's eval-mode output within 1e-4 (atol and rtol), for the
# eval-mode export (BatchNorm folded by torch) and for the training-mode
# export (BatchNorm and Dropout kept in their training form; nnic runs them
# in eval mode). The exports are made at test time into a temporary folder
# by tests/fixtures/onnx_models/make_torchvision.py (about 100 MB, not
# committed).
#
# Usage: test_torchvision.sh NNIC_CLI
# Skips (77) when python3 cannot import torch, torchvision and onnx (Debian:
# python3-torch, python3-torchvision, python3-onnx; not in tools/deps.sh),
# or when the CLI has no `infer` command.
# NNIC_TV_MODELS=resnet18,... picks models; NNIC_TV_SIZE the input size (64).
set -euo pipefail
nnic=${1:?usage: test_torchvision.sh NNIC_CLI}
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
if ! "$nnic" --help 2>&1 | grep -q '^  infer '; then
  echo "SKIP: $nnic has no 'infer' command yet"
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
start=$SECONDS
"$py" "$src/tests/fixtures/onnx_models/make_torchvision.py" "$tmp" \
  --models "${NNIC_TV_MODELS:-resnet18,mobilenet_v2,small_vgg}" --size "${NNIC_TV_SIZE:-64}" \
  > "$tmp/make.log" 2>&1 || {
  cat "$tmp/make.log"
  echo "FAIL: make_torchvision.py"
  exit 1
}
grep -v -i 'warning\|_C\._jit' "$tmp/make.log" || true
echo "exports written in $((SECONDS - start)) s"

passed=0 failed=0
infer () { # label model.onnx input.npy expected.npy
  local label=$1 model=$2 input=$3 want=$4 log t=$SECONDS
  if ! log=$("$nnic" infer --model "$model" --input "$input" --out "$tmp/got.npy" 2>&1); then
    echo "FAIL $label: nnic infer: $log"
    failed=$((failed + 1))
    return 1
  fi
  if log=$($compare "$tmp/got.npy" "$want" 1e-4 1e-4 2>&1); then
    echo "PASS $label: $log ($((SECONDS - t)) s)"
    passed=$((passed + 1))
  else
    echo "FAIL $label: $log"
    failed=$((failed + 1))
    return 1
  fi
}

# ---- the compression pipeline of issue 5 ----
# On the training-form export (BatchNorm kept): one training step on the
# input batch (labels 0..), l1filter at 0.5 on every Conv2d in
# dependency-aware mode, export to ONNX; then the exported file must give
# nnic's own output within 1e-4 in nnic and in ONNX Runtime, and the
# convolutions tied by a residual Add must have lost the same filters.
. "$src/tests/onnx_runtime/ort.sh"
have_ort=0
if ort_setup > "$tmp/ort.log" 2>&1; then have_ort=1; else echo "note: no ONNX Runtime check: $ORT_SKIP_REASON"; fi
echo '[{"sparsity": 0.5, "op_types": ["Conv2d"]}]' > "$tmp/l1.json"

pipeline () { # NAME training-form.onnx input.npy
  local name=$1 model=$2 input=$3 out=$tmp/$1_pruned log t=$SECONDS
  "$py" -c "import numpy as np, sys; x = np.load(sys.argv[1]); np.save(sys.argv[2], np.arange(x.shape[0]) % 10)" \
    "$input" "$tmp/${name}_labels.npy"
  if ! log=$("$nnic" compress --model "$model" --config "$tmp/l1.json" --algorithm l1filter --dependency-aware \
      --data "$input,$tmp/${name}_labels.npy" --finetune-epochs 1 --batch-size 64 -q \
      --out "$out" --export-onnx "$out/pruned.onnx" 2>&1); then
    echo "FAIL $name pipeline: nnic compress: $log"
    failed=$((failed + 1))
    return
  fi
  if ! grep -q "^fine-tune epoch 1/1: loss [0-9]" <<< "$log"; then
    echo "FAIL $name pipeline: no training step: $log"
    failed=$((failed + 1))
    return
  fi
  # The pruned file in nnic, and the tied filters.
  "$nnic" infer --model "$out/pruned.onnx" --input "$input" --out "$out/nnic.npy" > /dev/null
  if ! log=$("$py" "$src/tests/onnx_runtime/check_pruned.py" "$out/pruned.onnx" "$name" 2>&1); then
    echo "FAIL $name pipeline: $log"
    failed=$((failed + 1))
    return
  fi
  echo "PASS $name: trained one step, pruned (dependency-aware l1filter), exported; $log ($((SECONDS - t)) s)"
  passed=$((passed + 1))
  if [ "$have_ort" -eq 1 ]; then
    if ! log=$(ort_run "$out/pruned.onnx" "$input" "$out/ort.npy" 2>&1); then
      echo "FAIL $name pipeline: ONNX Runtime: $log"
      failed=$((failed + 1))
    elif log=$($compare "$out/ort.npy" "$out/nnic.npy" 1e-4 1e-4 2>&1); then
      echo "PASS $name: ONNX Runtime runs nnic's export, equal to nnic within 1e-4: $log"
      passed=$((passed + 1))
    else
      echo "FAIL $name pipeline: ONNX Runtime vs nnic: $log"
      failed=$((failed + 1))
    fi
  fi
}

while read -r name eval_onnx train_onnx input output; do
  infer "$name (eval export)" "$tmp/$eval_onnx" "$tmp/$input" "$tmp/$output" || true
  infer "$name (training-form export, run in eval mode)" "$tmp/$train_onnx" "$tmp/$input" "$tmp/$output" || true
  pipeline "$name" "$tmp/$train_onnx" "$tmp/$input"
done < "$tmp/manifest.txt"

echo "torchvision: $passed passed, $failed failed ($((SECONDS - start)) s)"
[ "$failed" -eq 0 ]
