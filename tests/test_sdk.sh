#!/usr/bin/env bash
# The SDK is a product: install nnic into a temporary prefix, then build
# sdk/template out of tree and every C block of sdk/GUIDE.md against that
# installation alone (pkg-config nnic-plugin), and load them all through
# NNIC_PLUGIN_PATH with the installed nnic.
set -euo pipefail
src=${NNIC_SOURCE_DIR:?} build=${NNIC_BUILD_DIR:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
dest=$tmp/dest

meson install -C "$build" --destdir "$dest" --no-rebuild >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log"; exit 1; }
prefix=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
root=$dest$prefix
# Relocate the installed .pc files to where the files really are.
sed -i "s|^prefix=.*|prefix=$root|" "$root/$libdir"/pkgconfig/nnic*.pc
export PKG_CONFIG_PATH=$root/$libdir/pkgconfig
export LD_LIBRARY_PATH=$root/$libdir
nnic=$root/bin/nnic
pkg-config --exists nnic-plugin || { echo "nnic-plugin.pc is not installed"; exit 1; }
echo "ok   installed into $root"

# The template, with its own meson.build, out of tree.
meson setup "$tmp/template" "$src/sdk/template" ${NNIC_SANITIZE_FLAGS:+-Db_sanitize=${NNIC_SANITIZE_FLAGS#-fsanitize=}} \
  -Db_lundef=false >"$tmp/setup.log" 2>&1 || { cat "$tmp/setup.log"; exit 1; }
ninja -C "$tmp/template" >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log"; exit 1; }
echo "ok   sdk/template builds out of tree"

# Every C block of the guide, as a plugin of its own.
mkdir -p "$tmp/guide"
awk -v dir="$tmp/guide" '/^```c$/ { n++; f = dir "/block" n ".c"; inside = 1; next }
                         /^```/ { inside = 0 } inside { print > f }' "$src/sdk/GUIDE.md"
shopt -s nullglob
blocks=("$tmp"/guide/block*.c)
[ ${#blocks[@]} -ge 4 ] || { echo "GUIDE.md has ${#blocks[@]} C blocks, expected at least 4"; exit 1; }
for f in "${blocks[@]}"; do
  # shellcheck disable=SC2046
  cc -std=c11 -Wall -Wextra -Werror -shared -fPIC ${NNIC_SANITIZE_FLAGS:-} "$f" -o "${f%.c}.so" \
    $(pkg-config --cflags --libs nnic-plugin) -lm
  echo "ok   $(basename "$f") compiles"
done

# All of them load, with nothing refused.
NNIC_PLUGIN_PATH="$tmp/template:$tmp/guide:$root/$libdir/nnic/plugins" "$nnic" plugins >"$tmp/plugins.out" 2>"$tmp/plugins.err"
for name in block_level row_level filter_max linear_gradual least_active sign_clip level agp naive; do
  grep -qw "$name" "$tmp/plugins.out" || { echo "FAIL: nnic plugins does not list $name"; cat "$tmp/plugins.out" "$tmp/plugins.err"; exit 1; }
done
if grep -q . "$tmp/plugins.err"; then echo "FAIL: problems loading plugins:"; cat "$tmp/plugins.err"; exit 1; fi
echo "ok   the template and the guide's plugins load in the installed nnic"

# And they work: each prunes (or quantizes) a briefly trained nni_cnn.
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${NNIC_DATA_DIR:-}" ]; then
  echo "SKIP running the guide's plugins: Fashion-MNIST is not installed"
  exit 0
fi
export NNIC_PLUGIN_PATH="$tmp/template:$tmp/guide:$root/$libdir/nnic/plugins"
"$nnic" train --model nni_cnn --epochs 1 --limit 1000 --eval-limit 200 --quiet --out "$tmp/ck.safetensors" >/dev/null
run_compress () { # NAME EXPECTED-LINE ALGORITHM CONFIG [OPTIONS...]
  local name=$1 expect=$2 algorithm=$3 config=$4; shift 4
  echo "$config" > "$tmp/$name.json"
  if ! "$nnic" compress --checkpoint "$tmp/ck.safetensors" --config "$tmp/$name.json" --algorithm "$algorithm" \
       --limit 300 --eval-limit 200 --quiet --out "$tmp/out-$name" "$@" >"$tmp/$name.out" 2>&1; then
    echo "FAIL: $name"; cat "$tmp/$name.out"; exit 1
  fi
  grep -q -- "$expect" "$tmp/$name.out" || { echo "FAIL: $name: no line matching '$expect'"; cat "$tmp/$name.out"; exit 1; }
  echo "ok   $name runs"
}
run_compress template "^fc1 .* 50.00%$" block_level '[{"sparsity": 0.5, "block_size": 4, "op_types": ["default"]}]'
run_compress row_level "^fc1 .* 50.00%$" row_level '[{"sparsity": 0.5, "op_types": ["default"]}]'
run_compress filter_max "^conv2 .* 50.00%$" filter_max '[{"sparsity": 0.5, "op_types": ["Conv2d"]}]'
run_compress filter_max_dependency "^conv2 .* 50.00%$" filter_max '[{"sparsity": 0.5, "op_types": ["Conv2d"]}]' \
  --dependency-aware
run_compress linear_gradual "^fc1 .* 60.00%$" linear_gradual \
  '[{"final_sparsity": 0.6, "epochs": 2, "op_types": ["default"]}]' --finetune-epochs 2 --masker row_level
run_compress least_active "^conv2 .* 50.00%$" least_active '[{"sparsity": 0.5, "op_types": ["Conv2d"]}]'
run_compress sign_clip "^accuracy after: " sign_clip \
  '[{"quant_types": ["weight"], "quant_bits": 1, "op_types": ["Conv2d", "Linear"]}]' --export-onnx "$tmp/sign_clip.onnx"
[ -s "$tmp/sign_clip.onnx" ] || { echo "FAIL: sign_clip: --export-onnx wrote nothing"; exit 1; }
echo "ok   sign_clip's published parameters export to ONNX"
