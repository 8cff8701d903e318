#!/usr/bin/env bash
# Installs what nnic needs to build, test and run its main job on Debian 12,
# when it is missing. Needs root (or sudo) only when something is missing.
set -euo pipefail
pkgs=(gcc meson ninja-build pkg-config libglib2.0-dev libjson-glib-dev libopenblas-dev check
      zlib1g-dev dataset-fashion-mnist python3 python3-numpy
      protobuf-c-compiler libprotobuf-c-dev libonnx-dev libonnx-testdata
      python3-onnx python3-torchvision)
# tests/test_onnxruntime.sh runs ONNX Runtime from npm (onnxruntime-node):
# Node.js 18+ and npm; Debian's when the machine has none of its own.
if ! command -v node > /dev/null || ! command -v npm > /dev/null; then
  pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "nnic: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
