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
# A block with main() is a program; one with NNIC_PLUGIN_DEFINE a plugin;
# anything else a fragment, compiled as the body of a function that has
# `model`, `opt` and `err` at hand.
export PKG_CONFIG_PATH="$build/meson-uninstalled"
# The uninstalled nnic.pc also has -I for core/ (meson adds the library's
# own directory); like a program built against the installed nnic, the
# blocks see include/ only.
cflags=$(pkg-config --cflags nnic | tr ' ' '\n' | grep -v -e '^-I.*/core$' | tr '\n' ' ')
libs=$(pkg-config --libs nnic)
for f in "${blocks[@]}"; do
  flags=(-std=c11 -Wall -Wextra -Werror ${NNIC_SANITIZE_FLAGS:-})
  if grep -q '^main (' "$f"; then
    # shellcheck disable=SC2086
    cc "${flags[@]}" "$f" -o "${f%.c}" $cflags $libs -Wl,-rpath,"$build/core"
    echo "ok   $(basename "$f"): a program, compiles and links"
  elif grep -q 'NNIC_PLUGIN_DEFINE' "$f"; then
    # shellcheck disable=SC2086
    cc "${flags[@]}" -shared -fPIC "$f" -o "${f%.c}.so" $cflags $libs
    echo "ok   $(basename "$f"): a plugin, compiles"
  else
    { echo '#include <nnic/nnic.h>'
      echo 'void readme_fragment (NnicModel *model, NnicOptimizer *opt);'
      echo 'void readme_fragment (NnicModel *model, NnicOptimizer *opt) {'
      echo 'g_autoptr (GError) err = NULL;'
      cat "$f"
      echo '}'; } > "${f%.c}_fragment.c"
    # shellcheck disable=SC2086
    cc "${flags[@]}" -c "${f%.c}_fragment.c" -o "${f%.c}.o" $cflags
    echo "ok   $(basename "$f"): a fragment, compiles"
  fi
done
