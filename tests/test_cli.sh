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
else
  echo "SKIP train/eval: Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)"
fi
[ "$fails" -eq 0 ]
