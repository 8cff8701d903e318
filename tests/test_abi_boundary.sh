#!/usr/bin/env bash
# The library's boundary, as the build enforces it (DESIGN §2, §5):
#  1. libnnic.so exports exactly the functions and variables that
#     include/nnic/*.h declares, each with NNIC_API: nothing internal leaks
#     out, and nothing public is declared but missing.
#  2. The in-tree plugins, the test plugins and the nnic program compile
#     against include/ alone, as a third party's would: no -I to the source
#     root, to core/ or to anywhere else in the tree, and no #include that
#     reaches into core/.
# Usage: test_abi_boundary.sh LIBNNIC.SO   (NNIC_SOURCE_DIR, NNIC_BUILD_DIR set)
set -euo pipefail
lib=${1:?usage: test_abi_boundary.sh LIBNNIC.SO}
src=$(realpath "${NNIC_SOURCE_DIR:?}") build=$(realpath "${NNIC_BUILD_DIR:?}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

# ---- 1. exported symbols against the public headers ----

# Every top-level declaration of the public headers, as "NAME API" where API
# is 1 when it carries NNIC_API. Comments, preprocessor lines (the bodies
# of macros such as NNIC_PLUGIN_DEFINE), GLib's declaration macros, struct
# and enum bodies and typedefs are left out; what remains are the function
# declarations (named by the identifier before their first parenthesis)
# and variable declarations (the last identifier).
awk '
FNR == 1 { incomment = 0; cont = 0 }
{
  if (cont) { cont = ($0 ~ /\\$/); next }
  line = $0; out = ""
  while (line != "") {
    if (incomment) {
      i = index(line, "*/")
      if (i == 0) break
      line = substr(line, i + 2); incomment = 0
    } else {
      i = index(line, "/*")
      if (i == 0) { out = out line; break }
      out = out substr(line, 1, i - 1); line = substr(line, i + 2); incomment = 1
    }
  }
  if (out ~ /^[ \t]*#/) { cont = ($0 ~ /\\$/); next }
  if (out ~ /^[ \t]*(G_BEGIN_DECLS|G_END_DECLS|G_DEFINE_AUTOPTR_CLEANUP_FUNC)/) next
  text = text " " out
}
END {
  while (gsub(/\{[^{}]*\}/, "", text)) {}
  n = split(text, stmts, ";")
  for (k = 1; k <= n; k++) {
    s = stmts[k]
    gsub(/^[ \t]+|[ \t]+$/, "", s)
    if (s == "" || s ~ /^(typedef|struct|enum|union)([ \t]|$)/) continue
    api = (s ~ /(^|[^A-Za-z0-9_])NNIC_API([^A-Za-z0-9_]|$)/) ? 1 : 0
    if (match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/)) {
      name = substr(s, RSTART, RLENGTH - 1)
    } else {
      sub(/[ \t]*=.*$/, "", s); sub(/[ \t]*\[.*$/, "", s)
      match(s, /[A-Za-z_][A-Za-z0-9_]*$/)
      name = substr(s, RSTART, RLENGTH)
    }
    gsub(/[ \t]/, "", name)
    print name, api
  }
}' "$src"/include/nnic/*.h > "$tmp/decls"

awk '$2 == 1 { print $1 }' "$tmp/decls" | sort -u > "$tmp/declared"
awk '$2 == 0 { print $1 }' "$tmp/decls" | sort -u > "$tmp/no_api"
n_declared=$(wc -l < "$tmp/declared")
if [ "$n_declared" -lt 100 ]; then
  echo "FAIL: found only $n_declared NNIC_API declarations in $src/include/nnic (is the parser broken?)"
  exit 1
fi
if [ -s "$tmp/no_api" ]; then
  echo "FAIL: declared in include/nnic/ without NNIC_API (hidden in libnnic.so):"
  sed 's/^/  /' "$tmp/no_api"
  fail=1
fi

nm -D --defined-only --format=posix "$lib" | awk '{ print $1 }' | sed 's/@.*//' | sort -u > "$tmp/exported"
comm -13 "$tmp/declared" "$tmp/exported" > "$tmp/extra"
comm -23 "$tmp/declared" "$tmp/exported" > "$tmp/missing"
if [ -s "$tmp/extra" ]; then
  echo "FAIL: $(wc -l < "$tmp/extra") symbols exported by $(basename "$lib") but not declared with NNIC_API in include/nnic/:"
  sed 's/^/  /' "$tmp/extra"
  fail=1
fi
if [ -s "$tmp/missing" ]; then
  echo "FAIL: $(wc -l < "$tmp/missing") NNIC_API declarations that $(basename "$lib") does not export (defined nowhere, static, or hidden):"
  sed 's/^/  /' "$tmp/missing"
  fail=1
fi
[ "$fail" = 1 ] || echo "ok   $(basename "$lib") exports exactly the $n_declared NNIC_API declarations of include/nnic/"

# ---- 2. plugins and tools see include/ only ----

ccjson=$build/compile_commands.json
[ -f "$ccjson" ] || { echo "FAIL: $ccjson is missing"; exit 1; }
# The -I paths of every compile of a file under plugins/, tests/plugins/ or
# tools/ (meson writes "directory" before "command"), made absolute and
# normalised, checked against what such a file may see: include/ (source
# and build trees), its own directory and its target's private directory.
awk -v src="$src" -v build="$build" '
function norm(p,   n, parts, out, k, m, r) {
  n = split(p, parts, "/"); m = 0
  for (k = 1; k <= n; k++) {
    if (parts[k] == "" || parts[k] == ".") continue
    if (parts[k] == "..") { if (m > 0) m--; continue }
    out[++m] = parts[k]
  }
  r = ""
  for (k = 1; k <= m; k++) r = r "/" out[k]
  return r == "" ? "/" : r
}
/^ *"directory": / { dir = $0; sub(/^ *"directory": "/, "", dir); sub(/",?$/, "", dir) }
/^ *"command": / {
  n = split($0, tok, " ")
  file = ""
  for (k = 1; k < n; k++) if (tok[k] == "-c") file = tok[k + 1]
  sub(/",?$/, "", file)
  file = norm(file ~ /^\// ? file : dir "/" file)
  rel = substr(file, length(src) + 2)
  if (index(file, src "/") != 1 || rel !~ /^(plugins|tools|tests\/plugins)\//) next
  checked[rel] = 1
  reldir = rel; sub(/\/[^\/]*$/, "", reldir)
  for (k = 1; k <= n; k++) {
    t = tok[k]
    if (t !~ /^-(I|isystem|iquote|idirafter)/) continue
    sub(/^-(I|isystem|iquote|idirafter)/, "", t)
    if (t == "") t = tok[k + 1]
    p = norm(t ~ /^\// ? t : dir "/" t)
    if (p == src "/include" || p == build "/include" || p == src "/" reldir || p == build "/" reldir)
      continue
    if (index(p, build "/" reldir "/") == 1 && p ~ /\.p$/) continue
    if (p == src || index(p, src "/") == 1 || p == build || index(p, build "/") == 1)
      print "FAIL: " rel " is compiled with -I" p ": plugins and tools must see include/ only"
  }
}
END { for (r in checked) print r > "/dev/stderr" }' "$ccjson" > "$tmp/bad_incs" 2> "$tmp/checked"
n_checked=$(wc -l < "$tmp/checked")
if [ -s "$tmp/bad_incs" ]; then
  cat "$tmp/bad_incs"
  fail=1
fi
if [ "$n_checked" -lt 10 ]; then
  echo "FAIL: found only $n_checked plugin and tool sources in $ccjson"
  fail=1
fi
if grep -nE '^[ \t]*#[ \t]*include[ \t]*[<"](\.\./)*core/' -r "$src"/plugins "$src"/tools "$src"/tests/plugins \
     --include='*.c' --include='*.h' > "$tmp/core_includes"; then
  echo "FAIL: plugins or tools include core/ headers:"
  sed 's/^/  /' "$tmp/core_includes"
  fail=1
fi
[ "$fail" = 1 ] || echo "ok   $n_checked plugin and tool sources compile with include/ only"
exit "$fail"
