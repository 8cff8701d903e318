#!/usr/bin/env bash
# `nnic plugins` against the test plugins: the listing, the config keys,
# warnings on stderr for refused and shadowed plugins, --names, --path.
set -u
nnic=$1
good=$NNIC_TEST_PLUGINS_GOOD dup=$NNIC_TEST_PLUGINS_DUP bad=$NNIC_TEST_PLUGINS_BAD
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL $*"; echo "--- stdout"; cat "$tmp/out"; echo "--- stderr"; cat "$tmp/err"; fails=$((fails+1)); }
run() { # run NAME PATH ARGS... : must exit 0
  local name=$1 path=$2; shift 2
  if NNIC_PLUGIN_PATH=$path "$nnic" plugins "$@" >"$tmp/out" 2>"$tmp/err"; then echo "ok   $name"
  else fail "$name (exit $?)"; fi
}
has() { # has NAME FILE NEEDLE : FILE must contain the fixed string NEEDLE
  grep -qF -- "$3" "$tmp/$2" && echo "ok   $1" || fail "$1: $2 lacks '$3'"
}
lacks() {
  grep -qF -- "$3" "$tmp/$2" && fail "$1: $2 has '$3'" || echo "ok   $1"
}

run help "" --help
has help-summary out "NNIC_PLUGIN_PATH"

run good "$good"
has good-masker out "test_masker     masker     Masks nothing (a test plugin)"
has good-plugin out "plugin   nnic-test-good 1.2.3 (MIT), plugin ABI "
has good-file out "file     $good/libgood.so"
has good-key out "keys     test_strength  number  [0, 1)  default 0.5  How hard the test masker prunes"
has good-keys-aligned out "             test_verbose      bool               default false          Say what it does"
has good-required out "test_steps        int     [1, 1000]  required"
has good-quantizer out "test_quantizer  quantizer"
has good-future-keys out "first_key"
lacks good-no-warnings err "warning:"

run dup-and-bad "$dup:$good:$bad:/nonexistent/nnic-plugins"
has dup-wins out "file     $dup/libdup.so"
has dup-warning err "warning: $good/libgood.so: algorithm 'test_masker' already provided by $dup/libdup.so (ignored)"
has abi-warning err "warning: $bad/libabi_major.so: built for plugin ABI "
has missing-dir-warning err "warning: NNIC_PLUGIN_PATH: /nonexistent/nnic-plugins: no such directory (skipped)"
lacks bad-not-listed out "should_vanish"

run names-option "$good" --names
if [ "$(cat "$tmp/out")" = "$(printf 'test_masker\ntest_pruner\ntest_quantizer')" ]; then echo "ok   names-only"
else fail "names-only"; fi

run path-option "/a:/b" --path
if [ "$(head -2 "$tmp/out")" = "$(printf '/a\n/b')" ] && [ "$(wc -l <"$tmp/out")" -eq 3 ]; then echo "ok   path"
else fail "path"; fi

if NNIC_PLUGIN_PATH=$good "$nnic" plugins extra >"$tmp/out" 2>"$tmp/err"; then fail "extra-argument (succeeded)"
else has extra-argument err "unexpected argument 'extra'"; fi

exit $((fails > 0))
