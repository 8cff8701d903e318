#!/usr/bin/env bash
# The main job: install what is missing, build, and train NNI's example CNN
# on Fashion-MNIST with NNI's recipe; prints the test accuracy per epoch.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
bash tools/build.sh >/dev/null
exec build/tools/nnic train --model nni_cnn --data fashion-mnist --epochs 3 --seed 0 \
  --optimizer sgd --lr 0.01 --momentum 0.5 --batch-size 64 --out build/nni_cnn.safetensors "$@"
