# shellcheck shell=bash disable=SC2034
# Sourced by the tests that run ONNX Runtime (tests/test_onnxruntime.sh, and
# later the checks of models nnic exports). Defines:
#
#   ort_setup      installs onnxruntime-node (the version package-lock.json
#                  pins) into a cache directory when it is not there yet and
#                  exports NODE_PATH to it. Returns 1 with the reason in
#                  $ORT_SKIP_REASON when node, npm or the registry is not
#                  available (callers skip, exit 77).
#   ort_run MODEL INPUT OUTPUT
#                  runs MODEL on INPUT (.npy, or a TensorProto .pb) and writes
#                  the first output to OUTPUT (.npy).
#   ort_pb_to_npy TENSOR.pb OUT.npy
#
# The cache: $NNIC_ORT_CACHE, else $XDG_CACHE_HOME/nnic (~/.cache/nnic), in a
# folder named after the hash of package.json + package-lock.json, so a new
# pin installs beside the old one. npm ci runs with --ignore-scripts (the
# package's postinstall only fetches the CUDA provider from outside the npm
# registry; the CPU runtime is in the package), under a lock, into a
# temporary folder renamed into place when it works.

ORT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ORT_SKIP_REASON=

ort_setup () {
  if ! command -v node > /dev/null; then
    ORT_SKIP_REASON="node is not installed (Node.js 20 from Debian or nodesource)"
    return 1
  fi
  if ! command -v npm > /dev/null; then
    ORT_SKIP_REASON="npm is not installed"
    return 1
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 18 ]; then
    ORT_SKIP_REASON="node $(node --version) is too old for onnxruntime-node (18 or later)"
    return 1
  fi
  local hash root dest
  hash=$(cat "$ORT_DIR/package.json" "$ORT_DIR/package-lock.json" | sha256sum | cut -c1-16)
  root=${NNIC_ORT_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/nnic}
  if ! mkdir -p "$root" 2> /dev/null || [ ! -w "$root" ]; then
    root=${TMPDIR:-/tmp}/nnic-ort-cache-$(id -u)
    mkdir -p "$root"
  fi
  dest=$root/onnxruntime-node-$hash
  if [ ! -f "$dest/.installed" ]; then
    (
      flock 9
      [ -f "$dest/.installed" ] && exit 0
      local tmp="$dest.tmp.$$"
      rm -rf "$tmp"
      mkdir -p "$tmp"
      cp "$ORT_DIR/package.json" "$ORT_DIR/package-lock.json" "$ORT_DIR/.npmrc" "$tmp/"
      echo "ort: installing onnxruntime-node into $dest (npm ci --ignore-scripts)" >&2
      if ! (cd "$tmp" && ONNXRUNTIME_NODE_INSTALL=skip timeout 600 npm ci --ignore-scripts --no-audit \
              --no-fund > npm.log 2>&1); then
        tail -20 "$tmp/npm.log" >&2
        rm -rf "$tmp"
        exit 1
      fi
      rm -rf "$dest"
      touch "$tmp/.installed"
      mv "$tmp" "$dest"
    ) 9> "$root/.lock" || {
      ORT_SKIP_REASON="npm ci of onnxruntime-node failed (no access to the npm registry?)"
      return 1
    }
  fi
  export NODE_PATH=$dest/node_modules
  if ! node -e 'require("onnxruntime-node")' 2> "$dest/load-error.txt"; then
    ORT_SKIP_REASON="onnxruntime-node does not load: $(head -c 300 "$dest/load-error.txt")"
    return 1
  fi
  return 0
}

ort_run () {
  node "$ORT_DIR/run.mjs" "$@"
}

ort_pb_to_npy () {
  node "$ORT_DIR/run.mjs" --pb-to-npy "$@"
}
