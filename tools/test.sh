#!/usr/bin/env bash
# The test command: install what is missing, build, run the whole suite.
# Ends with one line "N passed, N failed" (meson's summary).
# NNIC_BUILD / NNIC_SANITIZE as for tools/build.sh.
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/deps.sh || exit 1
bash tools/build.sh || exit 1
dir=${NNIC_BUILD:-build}
log=$(mktemp)
meson test -C "$dir" --print-errorlogs 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
count() { sed -n "s/^$1: *\([0-9]*\).*/\1/p" "$log" | tail -n 1; }
ok=$(count Ok); fail=$(count Fail); timeout=$(count Timeout); xpass=$(count "Unexpected Pass")
rm -f "$log"
echo "${ok:-0} passed, $(( ${fail:-0} + ${timeout:-0} + ${xpass:-0} )) failed"
exit "$status"
