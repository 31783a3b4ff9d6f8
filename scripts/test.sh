#!/usr/bin/env bash
# The whole test suite: typecheck (tsc strict), lint (Biome), dead code
# (knip, configured in knip.json), build, unit tests beside the source,
# attack tests, supervisor integration tests, VM tests in QEMU. Ends with
# one line "N passed, N failed, N skipped".
# A skipped test must be listed in test/expected-skips.txt with its reason;
# any other skip (a missing tool, a test.skip left behind) fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
fail=0

step() { echo; echo "=== $*"; }
# Paths start with ./ so bun treats them as paths, not as name filters
# (a bare "update" also matched test/e2e/update.test.ts).
run() { "$BUN" test "$@" 2>&1 | tee -a "$LOG"; [ "${PIPESTATUS[0]}" -eq 0 ] || fail=1; }

step "typecheck (tsc --noEmit, strict)"
node_modules/.bin/tsc --noEmit -p . || fail=1

step "lint (biome check)"
node_modules/.bin/biome check . || fail=1

step "dead code (knip)"
node_modules/.bin/knip --no-progress || fail=1

step "build"
bash scripts/build.sh || { echo "build failed: cannot run the rest"; echo "0 passed, 1 failed, 0 skipped"; exit 1; }

step "unit tests"
# 30 s per test, not bun's 5 s: a timeout is not an assertion, and on a busy
# 2-core machine a deploy or an ext4 build in a unit test took over 5 s. A hang still fails.
run --timeout 30000 ./cli ./guest ./host ./lib ./sys ./update ./scripts ./test/fuzz ./test/architecture

step "attack tests (hostile images, manifests, clients; test/attack)"
run --timeout 120000 ./test/attack

step "integration tests (supervisor in a pid namespace)"
run --timeout 120000 ./test/integration

step "VM tests (QEMU, TCG)"
run --timeout 600000 ./test/vm ./test/e2e

sum() { grep -Eo "^ *[0-9]+ $1\$" "$LOG" | awk '{s+=$1} END {print s+0}'; }
passed=$(sum pass)
failed=$(sum fail)
skipped=$(sum skip)
todo=$(sum todo)

# Every skip must be expected: its name (as bun prints it after "(skip) ")
# is a line of test/expected-skips.txt, followed by a tab and the reason.
unexpected=$(grep -E '^\(skip\) ' "$LOG" | sed 's/^(skip) //; s/ \[[0-9.]*m\?s\]$//' | sort -u |
  while IFS= read -r name; do
    cut -f1 test/expected-skips.txt | grep -Fxq -- "$name" || echo "$name"
  done)
if [ -n "$unexpected" ]; then
  echo; echo "unexpected skips (not in test/expected-skips.txt):"
  echo "$unexpected" | sed 's/^/  /'
  fail=1
fi
if [ "$skipped" -gt 0 ]; then
  echo; echo "expected skips:"
  grep -E '^\(skip\) ' "$LOG" | sed 's/^(skip) //; s/ \[[0-9.]*m\?s\]$//' | sort -u |
    while IFS= read -r name; do
      reason=$(awk -F'\t' -v n="$name" '$1 == n {print $2}' test/expected-skips.txt)
      [ -n "$reason" ] && echo "  $name: $reason"
    done
fi
if [ "$todo" -gt 0 ]; then echo "$todo test(s) marked todo: not allowed"; fail=1; fi
if [ "$fail" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo
echo "$passed passed, $failed failed, $skipped skipped"
exit "$fail"
