#!/usr/bin/env bash
# The main job: install what is missing, build, train NNI's example CNN on
# Fashion-MNIST with NNI's recipe (once; the checkpoint is kept in build/),
# then prune it with level at sparsity 0.8, fine-tune one epoch, and export.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh
bash tools/build.sh >/dev/null
export NNIC_PLUGIN_PATH=$PWD/build/plugins${NNIC_PLUGIN_PATH:+:$NNIC_PLUGIN_PATH}
nnic=build/tools/nnic
checkpoint=build/nni_cnn.safetensors
if [ ! -f "$checkpoint" ]; then
  "$nnic" train --model nni_cnn --data fashion-mnist --epochs 3 --seed 0 \
    --optimizer sgd --lr 0.01 --momentum 0.5 --batch-size 64 --out "$checkpoint"
  echo
fi
config=build/level-0.8.json
echo '[{"sparsity": 0.8, "op_types": ["default"]}]' > "$config"
exec "$nnic" compress --model nni_cnn --checkpoint "$checkpoint" --config "$config" \
  --algorithm level --finetune-epochs 1 --out build/pruned "$@"
