#!/usr/bin/env bash
# The whole test suite: typecheck (tsc strict), lint (Biome), build, unit
# tests beside the source, supervisor integration tests, VM tests in QEMU.
# Ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
BUN=node_modules/.bin/bun
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
fail=0

step() { echo; echo "=== $*"; }

step "typecheck (tsc --noEmit, strict)"
node_modules/.bin/tsc --noEmit -p . || fail=1

step "lint (biome check)"
node_modules/.bin/biome check . || fail=1

step "build"
bash scripts/build.sh || { echo "build failed: cannot run the rest"; echo "0 passed, 1 failed"; exit 1; }

step "unit tests"
"$BUN" test init lib host-injector guest-agent update test/fuzz 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

step "attack tests (hostile images, manifests, clients; test/attack)"
"$BUN" test --timeout 120000 ./test/attack 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

step "integration tests (supervisor in a pid namespace)"
"$BUN" test --timeout 120000 test/integration 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

step "VM tests (QEMU, TCG)"
"$BUN" test --timeout 600000 test/vm test/e2e 2>&1 | tee -a "$LOG"
[ "${PIPESTATUS[0]}" -eq 0 ] || fail=1

passed=$(grep -Eo '^ *[0-9]+ pass$' "$LOG" | awk '{s+=$1} END {print s+0}')
failed=$(grep -Eo '^ *[0-9]+ fail$' "$LOG" | awk '{s+=$1} END {print s+0}')
if [ "$fail" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo
echo "$passed passed, $failed failed"
exit "$fail"
