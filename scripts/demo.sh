#!/usr/bin/env bash
# npm run demo [-- --no-mycelium] [-- --peer URI]: build, then boot hero-init in
# QEMU with a mycelium node on the host, and print where the UI answers
# (locally and over the overlay). Arguments go to scripts/demo.ts (--help).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec node_modules/.bin/bun scripts/demo.ts "$@"
