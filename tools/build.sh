#!/usr/bin/env bash
# Configures (once) and builds nnic in $NNIC_BUILD (default: build).
# NNIC_SANITIZE=1 makes an AddressSanitizer + UndefinedBehaviorSanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${NNIC_BUILD:-build}
if [ ! -f "$dir/build.ninja" ]; then
  opts=()
  if [ "${NNIC_SANITIZE:-0}" = 1 ]; then
    opts+=(-Dbuildtype=debug -Db_sanitize=address,undefined -Db_lundef=false)
  fi
  meson setup "$dir" "${opts[@]}"
fi
ninja -C "$dir"
