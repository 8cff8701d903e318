#!/usr/bin/env bash
# Every C code block of README.md compiles and links against the built libnnic.
set -euo pipefail
src=${NNIC_SOURCE_DIR:?} build=${NNIC_BUILD_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '/^```c$/ { n++; f = dir "/block" n ".c"; inside = 1; next }
                   /^```/ { inside = 0 } inside { print > f }' "$src/README.md"
shopt -s nullglob
blocks=("$tmp"/block*.c)
[ ${#blocks[@]} -gt 0 ] || { echo "README.md has no C block"; exit 1; }
for f in "${blocks[@]}"; do
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror ${NNIC_SANITIZE_FLAGS:-} "$f" -o "${f%.c}" \
    $(PKG_CONFIG_PATH="$build/meson-uninstalled" pkg-config --cflags --libs nnic) -Wl,-rpath,"$build/core"
  echo "ok   $(basename "$f") compiles and links"
done
