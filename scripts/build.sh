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
"$BUN" build --compile --bytecode --format=esm --target=bun-linux-x64 --minify-syntax --minify-whitespace \
  --no-compile-autoload-dotenv --no-compile-autoload-bunfig \
  cli/main.ts --outfile dist/hero-init.tmp
mv -f dist/hero-init.tmp dist/hero-init
if ! command -v musl-gcc >/dev/null; then
  echo "build: musl-gcc not found: apt-get install musl-tools" >&2
  exit 1
fi
musl-gcc -static -Os -s -Wall -Wextra -Werror -o dist/preinit.tmp guest/preinit/preinit.c
mv -f dist/preinit.tmp dist/preinit
ls -l dist/hero-init dist/preinit | awk '{print "build:", $5, $9}'
