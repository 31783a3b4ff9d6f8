#!/usr/bin/env bash
# npm run demo: build, then boot hero-init in QEMU and print where it answers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
exec node_modules/.bin/bun scripts/demo.ts
