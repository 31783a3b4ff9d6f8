#!/usr/bin/env bash
# Builds dist/hero-init (Bun standalone, x86-64 glibc, NOT stripped: strip
# would drop the embedded program and leave plain bun) and dist/preinit
# (static musl, ~30 KB).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p dist
BUN=node_modules/.bin/bun
[ -x "$BUN" ] || { echo "build: run 'npm install' first (bun comes from npm)" >&2; exit 1; }
# --bytecode: JavaScriptCore bytecode is embedded instead of source to parse
# at every start (a CLI call 44 → 15-20 ms on the host; more under TCG,
# docs/benchmarks.md). --format=esm keeps top-level await (cli/main.ts).
# --no-compile-autoload-*: a standalone Bun executable otherwise reads
# bunfig.toml and .env from its working directory at every start (PID 1's is
# "/"; a CLI call's is wherever the user is): work at boot that need not be,
# and a file there must not change hero-init's settings or environment.
# --splitting: the code behind each import() is its own chunk inside the
# executable, read when that import runs; without it every start (PID 1's
# boot, each `zinit list`) loads the bytecode of every command and subsystem.
# --bytecode-order: the bytecode PID 1's boot and `hero-init list` used is laid
# out first (profiles recorded by scripts/record-bytecode-order.ts; a profile
# matches functions by a hash of their syntax, so an older one still applies).
# --compile-jit-policy=8: JavaScriptCore's tier-up thresholds ×8 until PID 1
# calls Bun.unsafe.setJITPolicy(1) at READY (guest/pid1/run.ts): boot code runs
# once and rarely repays its compilation (figures: docs/benchmarks.md).
ORDER=scripts/bytecode-order
"$BUN" build --compile --bytecode --format=esm --target=bun-linux-x64 --minify-syntax --minify-whitespace \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  --splitting --bytecode-order="$ORDER/pid1.order,$ORDER/cli.order" --compile-jit-policy=8 \
  cli/main.ts --outfile dist/hero-init.tmp
mv -f dist/hero-init.tmp dist/hero-init
if ! command -v musl-gcc >/dev/null; then
  echo "build: musl-gcc not found: apt-get install musl-tools" >&2
  exit 1
fi
musl-gcc -static -Os -s -Wall -Wextra -Werror -o dist/preinit.tmp guest/preinit/preinit.c
mv -f dist/preinit.tmp dist/preinit
ls -l dist/hero-init dist/preinit | awk '{print "build:", $5, $9}'
