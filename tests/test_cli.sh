#!/usr/bin/env bash
# The nnic command line: help, errors, a short train run, eval of its checkpoint.
set -u
nnic=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { # check NAME COMMAND... : the command must succeed
  local name=$1; shift
  if "$@" >"$tmp/out" 2>"$tmp/err"; then echo "ok   $name"; else echo "FAIL $name"; cat "$tmp/out" "$tmp/err"; fails=$((fails+1)); fi
}
refuse() { # refuse NAME NEEDLE COMMAND... : must fail with NEEDLE on stderr
  local name=$1 needle=$2; shift 2
  if "$@" >"$tmp/out" 2>"$tmp/err"; then echo "FAIL $name (succeeded)"; fails=$((fails+1));
  elif grep -qF -- "$needle" "$tmp/err"; then echo "ok   $name";
  else echo "FAIL $name: stderr lacks '$needle'"; cat "$tmp/err"; fails=$((fails+1)); fi
}

check help "$nnic" --help
check train-help "$nnic" train --help
grep -q -- "--batch-size" "$tmp/out" || { echo "FAIL train --help lacks --batch-size"; fails=$((fails+1)); }
check models "$nnic" models
grep -q "^nni_cnn " "$tmp/out" || { echo "FAIL models lacks nni_cnn"; fails=$((fails+1)); }
refuse unknown-command "unknown command" "$nnic" frobnicate
refuse unknown-model "unknown model 'nosuch'" "$nnic" train --model nosuch --limit 10 --epochs 1
refuse bad-optimizer "unknown optimizer" "$nnic" train --optimizer rmsprop --limit 10
refuse bad-data "unknown data set" "$nnic" train --data cifar99 --limit 10
refuse eval-no-checkpoint "--checkpoint" "$nnic" eval
refuse eval-missing-file "nope.safetensors" "$nnic" eval --checkpoint "$tmp/nope.safetensors"
printf 'garbage' > "$tmp/bad.safetensors"
refuse eval-bad-file "bad.safetensors" "$nnic" eval --checkpoint "$tmp/bad.safetensors"

if [ -d /usr/share/datasets/fashion-mnist ] || [ -n "${NNIC_DATA_DIR:-}" ]; then
  check train-short "$nnic" train --model nni_cnn --epochs 1 --limit 2000 --eval-limit 1000 \
    --optimizer sgd --lr 0.01 --momentum 0.5 --seed 0 --out "$tmp/ck.safetensors"
  grep -q "^accuracy: 0\.[0-9]\{4\}$" "$tmp/out" || { echo "FAIL train output lacks 'accuracy: 0.xxxx'"; cat "$tmp/out"; fails=$((fails+1)); }
  grep -q "^time per epoch: " "$tmp/out" || { echo "FAIL train output lacks the time per epoch"; fails=$((fails+1)); }
  train_acc=$(sed -n 's/^accuracy: //p' "$tmp/out")
  # Not a terminal: progress comes as plain lines on stderr.
  grep -q "^epoch 1/1 batch 32/32 loss" "$tmp/err" || { echo "FAIL no plain progress lines"; cat "$tmp/err"; fails=$((fails+1)); }
  check eval "$nnic" eval --model nni_cnn --checkpoint "$tmp/ck.safetensors" --limit 1000
  eval_acc=$(sed -n 's/^accuracy: //p' "$tmp/out")
  [ "$eval_acc" = "$train_acc" ] && echo "ok   eval-matches-train" || { echo "FAIL eval $eval_acc != train $train_acc"; fails=$((fails+1)); }
  refuse eval-wrong-model "conv1.weight" "$nnic" eval --model lenet5 --checkpoint "$tmp/ck.safetensors" --limit 100

  # compress: level at 0.5 on the checkpoint, a short fine-tune, and an export
  # whose zeros are exactly those the report claims.
  echo '[{"sparsity": 0.5, "op_types": ["default"]}]' > "$tmp/level.json"
  check compress "$nnic" compress --model nni_cnn --checkpoint "$tmp/ck.safetensors" --config "$tmp/level.json" \
    --algorithm level --finetune-epochs 1 --limit 1000 --eval-limit 500 --out "$tmp/pruned"
  for line in "^fc1 .* 50.00%$" "^accuracy before: 0\.[0-9]\{4\}$" "^accuracy pruned: " "^accuracy after: " "^parameters kept: "; do
    grep -q "$line" "$tmp/out" || { echo "FAIL compress output lacks '$line'"; cat "$tmp/out"; fails=$((fails+1)); }
  done
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    check export-matches-report /usr/bin/python3 "$(dirname "$0")/check_export.py" "$tmp/pruned"
  else
    echo "SKIP export-matches-report: no python3-numpy"
  fi
  echo '[{"sparsty": 0.5, "op_types": ["default"]}]' > "$tmp/typo.json"
  refuse compress-typo "typo.json: level: config_list[0].sparsty: unknown key; did you mean 'sparsity'?" \
    "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/typo.json" --algorithm level --out "$tmp/x" --limit 10 --eval-limit 10
  refuse compress-unknown-algorithm "did you mean 'level'" \
    "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/level.json" --algorithm levle --out "$tmp/x" --limit 10 --eval-limit 10
  check compress-agp "$nnic" compress --checkpoint "$tmp/ck.safetensors" --algorithm agp --finetune-epochs 2 \
    --config <(echo '[{"initial_sparsity": 0.0, "final_sparsity": 0.6, "start_epoch": 0, "end_epoch": 2, "op_types": ["default"]}]') \
    --limit 500 --eval-limit 200 --out "$tmp/agp"
  grep -q "^fc1 .* 60.00%$" "$tmp/out" || { echo "FAIL agp did not reach 0.6"; cat "$tmp/out"; fails=$((fails+1)); }
  # NNI's AGP example: one fine-tune epoch split into three AGP epochs
  # (targets 0, 0.7, 0.8), so the final sparsity is reached inside it.
  check compress-agp-split "$nnic" compress --checkpoint "$tmp/ck.safetensors" --algorithm agp --finetune-epochs 1 \
    --updates-per-epoch 3 --limit 300 --eval-limit 100 --out "$tmp/agp3" \
    --config <(echo '[{"initial_sparsity": 0.0, "final_sparsity": 0.8, "start_epoch": 0, "end_epoch": 3, "op_types": ["default"]}]')
  grep -q "^fc1 .* 80.00%$" "$tmp/out" || { echo "FAIL agp split did not reach 0.8"; cat "$tmp/out"; fails=$((fails+1)); }
  refuse compress-updates-zero "--updates-per-epoch must be at least 1, got 0" \
    "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/level.json" --algorithm level --out "$tmp/x" --updates-per-epoch 0
  echo '[{"quant_types": ["weight"], "quant_bits": 8, "op_types": ["Conv2d", "Linear"]}]' > "$tmp/naive.json"
  check compress-naive "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/naive.json" --algorithm naive \
    --finetune-epochs 0 --limit 100 --eval-limit 500 --out "$tmp/naive"
  for f in quantized.safetensors calibration.json; do
    [ -s "$tmp/naive/$f" ] || { echo "FAIL compress-naive wrote no $f"; fails=$((fails+1)); }
  done
  # The integer path beside the fake-quantized float model.
  check eval-quantized "$nnic" eval --quantized "$tmp/naive" --limit 500
  grep -q "^integer ([a-z0-9]*): 0\.[0-9]*$" "$tmp/out" && grep -q "^fake-quantized float: 0\.[0-9]*$" "$tmp/out" ||
    { echo "FAIL eval --quantized output"; cat "$tmp/out"; fails=$((fails+1)); }
  NNIC_QGEMM=c check eval-quantized-portable "$nnic" eval --quantized "$tmp/naive" --limit 200
  grep -q "^integer (c): " "$tmp/out" || { echo "FAIL NNIC_QGEMM=c not used"; cat "$tmp/out"; fails=$((fails+1)); }
  # Maskers that need statistics get them from training batches before the
  # pruned accuracy is measured, so masks exist without fine-tuning too.
  echo '[{"sparsity": 0.5, "op_types": ["Conv2d"], "statistics_batch_num": 2}]' > "$tmp/stats.json"
  for alg in taylorfo apoz mean_activation; do
    check "compress-$alg" "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/stats.json" \
      --algorithm "$alg" --finetune-epochs 0 --limit 200 --eval-limit 200 --out "$tmp/$alg"
    for line in "^$alg: statistics from 2 training batches" "^conv1 .* 50.00%$" "^conv2 .* 50.00%$"; do
      grep -q "$line" "$tmp/out" || { echo "FAIL $alg output lacks '$line'"; cat "$tmp/out"; fails=$((fails+1)); }
    done
  done
  check sensitivity "$nnic" sensitivity --checkpoint "$tmp/ck.safetensors" --sparsities 0.5 --eval-limit 200 \
    --layer conv2 --out "$tmp/sens.csv"
  grep -q "^conv2,0\.[0-9]*$" "$tmp/sens.csv" || { echo "FAIL sensitivity CSV"; cat "$tmp/sens.csv"; fails=$((fails+1)); }
  # NNI's BNN recipe: bnn_mnist from scratch with Adam.
  echo '[{"quant_types": ["weight"], "quant_bits": 1, "op_types": ["Conv2d", "Linear"], "op_names": ["features.3", "classifier.0"]}, {"quant_types": ["output"], "quant_bits": 1, "op_types": ["Hardtanh"], "op_names": ["features.2", "features.6", "classifier.2"]}]' > "$tmp/bnn.json"
  check compress-bnn-scratch "$nnic" compress --model bnn_mnist --from-scratch --config "$tmp/bnn.json" \
    --algorithm bnn --optimizer adam --lr 0.01 --limit 256 --eval-limit 100 --out "$tmp/bnn"
  grep -q "^fine-tune epoch 1/1: loss [0-9]" "$tmp/out" || { echo "FAIL bnn did not train"; cat "$tmp/out"; fails=$((fails+1)); }
  refuse compress-bad-optimizer "--optimizer: unknown optimizer 'rmsprop' (sgd or adam)" \
    "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/level.json" --algorithm level --out "$tmp/x" \
    --optimizer rmsprop --limit 10 --eval-limit 10
  check plugins "$nnic" plugins
  for name in level agp naive; do grep -qw "$name" "$tmp/out" || { echo "FAIL nnic plugins lacks $name"; fails=$((fails+1)); }; done
else
  echo "SKIP train/eval: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
fi
# An ONNX model without a data set: pruned without fine-tuning, the
# accuracy left out (and said so); fine-tuning asks for data.
onnx=${NNIC_SOURCE_DIR:-$(dirname "$0")/..}/tests/fixtures/onnx/nni_cnn_eval.onnx
echo '[{"sparsity": 0.5, "op_types": ["Conv2d"]}]' > "$tmp/l1.json"
check compress-onnx-no-data "$nnic" compress --model "$onnx" --config "$tmp/l1.json" --algorithm l1filter \
  --finetune-epochs 0 --out "$tmp/onnx-pruned" --export-onnx "$tmp/onnx-pruned/pruned.onnx"
grep -q "^accuracy: not measured (no data set)$" "$tmp/out" || { echo "FAIL no-data accuracy line"; cat "$tmp/out"; fails=$((fails+1)); }
grep -q '"accuracy" : "not measured: no data set"' "$tmp/onnx-pruned/report.json" ||
  { echo "FAIL no-data report"; cat "$tmp/onnx-pruned/report.json"; fails=$((fails+1)); }
grep -q "^conv2 .* 50.00%$" "$tmp/out" || { echo "FAIL onnx model not pruned"; cat "$tmp/out"; fails=$((fails+1)); }
check infer-exported "$nnic" infer --model "$tmp/onnx-pruned/pruned.onnx" \
  --input "${NNIC_SOURCE_DIR:-$(dirname "$0")/..}/tests/fixtures/onnx/nni_cnn.in.npy" --out "$tmp/y.npy"
refuse compress-onnx-finetune-no-data "fine-tuning needs a data set: give --data X.npy,Y.npy" \
  "$nnic" compress --model "$onnx" --config "$tmp/l1.json" --algorithm l1filter --out "$tmp/x"
refuse compress-builtin-no-checkpoint "--checkpoint is required for the built-in model nni_cnn" \
  "$nnic" compress --config "$tmp/l1.json" --algorithm l1filter --out "$tmp/x"
echo '[{"sparsity": 0.5, "op_types": ["Conv2d"], "statistics_batch_num": 1}]' > "$tmp/apoz.json"
refuse compress-stats-no-data "apoz ranks filters by statistics of training batches and needs a data set" \
  "$nnic" compress --model "$onnx" --config "$tmp/apoz.json" --algorithm apoz --finetune-epochs 0 --out "$tmp/x"
[ "$fails" -eq 0 ]
