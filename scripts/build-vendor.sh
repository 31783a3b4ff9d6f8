#!/usr/bin/env bash
# Builds the real mycelium (myceliumd, v0.7.10) and zinit (v0.2.14) from the
# source tarballs in ../shared/vendor, once per machine: the binaries are
# cached outside the clone, keyed by the tarball's sha256, in
#   ${HERO_VENDOR_CACHE:-$HOME/.cache/hero-init/vendor}/<name>-<sha12>/<binary>
# Prints "NAME=PATH" per binary. Tests find them through test/vendor.ts.
# The vendor directory: $HERO_VENDOR_DIR, else ../shared/vendor from the
# project, else /work/shared/vendor. Git hosts are unreachable: mycelium's two
# git dependencies are patched to the extracted tarballs (in a cargo config
# next to the extracted source, never in this project).
# Also zclient (test/zinit-client: the zinit-client crate 0.4.0 from
# crates.io as a command line), keyed by the sha256 of its Cargo.toml,
# Cargo.lock and src/main.rs; its crates come from crates.io (--locked).
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=$PWD
VENDOR=${HERO_VENDOR_DIR:-}
for d in "$VENDOR" "$PROJECT/../shared/vendor" /work/shared/vendor; do
  if [ -n "$d" ] && [ -f "$d/mycelium-0.7.10.tar.gz" ]; then VENDOR=$(cd "$d" && pwd); break; fi
done
[ -f "$VENDOR/mycelium-0.7.10.tar.gz" ] || { echo "build-vendor: no vendor directory (set HERO_VENDOR_DIR)" >&2; exit 1; }
CACHE=${HERO_VENDOR_CACHE:-$HOME/.cache/hero-init/vendor}
mkdir -p "$CACHE"

if ! command -v cargo >/dev/null; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "build-vendor: cargo is not on PATH; using rustup's $HOME/.cargo/bin" >&2
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "build-vendor: cargo not found (install rustup's toolchain); not downloading one" >&2
    exit 1
  fi
fi
# Fast, not small: no fat LTO, parallel codegen (2 cores).
export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_INCREMENTAL=0
export CARGO_TARGET_DIR_BASE="$CACHE/target"

key() { sha256sum "$VENDOR/$1" | cut -c1-12; }

build_mycelium() {
  local k out work
  k=$(key mycelium-0.7.10.tar.gz)-$(key rust-tun-ae4c222.tar.gz)-$(key mycelium-cdn-registry-b5848e6.tar.gz)
  out="$CACHE/mycelium-$k"
  if [ -x "$out/mycelium" ]; then echo "MYCELIUM=$out/mycelium"; return; fi
  work="$CACHE/src/mycelium-$k"
  rm -rf "$work" && mkdir -p "$work"
  tar xzf "$VENDOR/mycelium-0.7.10.tar.gz" -C "$work"
  tar xzf "$VENDOR/rust-tun-ae4c222.tar.gz" -C "$work"
  tar xzf "$VENDOR/mycelium-cdn-registry-b5848e6.tar.gz" -C "$work"
  mkdir -p "$work/mycelium-0.7.10/myceliumd/.cargo"
  cat >"$work/mycelium-0.7.10/myceliumd/.cargo/config.toml" <<TOML
[patch."https://github.com/LeeSmet/rust-tun"]
tun = { path = "$work/rust-tun-ae4c222" }
[patch."https://github.com/threefoldtech/mycelium-cdn-registry"]
cdn-meta = { path = "$work/mycelium-cdn-registry-b5848e6/crates/cdn-meta" }
TOML
  echo "build-vendor: building mycelium (first time on this machine; several minutes)" >&2
  # cargo's "Compiling …" lines are the progress; its error, if any, says why.
  (cd "$work/mycelium-0.7.10/myceliumd" &&
    CARGO_TARGET_DIR="$CACHE/target/mycelium" nice cargo build --release >&2) ||
    { echo "build-vendor: building mycelium failed (cargo's error above; source in $work)" >&2; exit 1; }
  mkdir -p "$out.tmp"
  cp "$CACHE/target/mycelium/release/mycelium" "$out.tmp/mycelium"
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work"
  echo "MYCELIUM=$out/mycelium"
}

build_zinit() {
  local k out work
  k=$(key zinit-0.2.14.tar.gz)
  out="$CACHE/zinit-$k"
  if [ -x "$out/zinit" ]; then echo "ZINIT=$out/zinit"; return; fi
  work="$CACHE/src/zinit-$k"
  rm -rf "$work" && mkdir -p "$work"
  tar xzf "$VENDOR/zinit-0.2.14.tar.gz" -C "$work"
  # git_version! needs a repository with a tag at build time.
  (cd "$work/zinit-0.2.14" && git init -q && git add -A &&
    git -c user.name=build -c user.email=build@localhost commit -qm v0.2.14 && git tag v0.2.14)
  echo "build-vendor: building zinit 0.2.14 (first time on this machine)" >&2
  (cd "$work/zinit-0.2.14" && CARGO_TARGET_DIR="$CACHE/target/zinit" nice cargo build --release >&2) ||
    { echo "build-vendor: building zinit failed (cargo's error above; source in $work)" >&2; exit 1; }
  mkdir -p "$out.tmp"
  cp "$CACHE/target/zinit/release/zinit" "$out.tmp/zinit"
  rm -rf "$out" && mv "$out.tmp" "$out"
  rm -rf "$work"
  echo "ZINIT=$out/zinit"
}

build_zclient() {
  local src=$PROJECT/test/zinit-client k out
  k=$(cat "$src/Cargo.toml" "$src/Cargo.lock" "$src/src/main.rs" | sha256sum | cut -c1-12)
  out="$CACHE/zclient-$k"
  if [ -x "$out/zclient" ]; then echo "ZCLIENT=$out/zclient"; return; fi
  echo "build-vendor: building zclient (zinit-client 0.4.0 from crates.io; first time on this machine)" >&2
  CARGO_TARGET_DIR="$CACHE/target/zclient" nice cargo build --release --locked \
    --manifest-path "$src/Cargo.toml" >&2 ||
    { echo "build-vendor: building zclient failed (cargo's error above)" >&2; exit 1; }
  mkdir -p "$out.tmp"
  cp "$CACHE/target/zclient/release/zclient" "$out.tmp/zclient"
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "ZCLIENT=$out/zclient"
}

case "${1:-all}" in
  mycelium) build_mycelium ;;
  zinit) build_zinit ;;
  zinit-client) build_zclient ;;
  all) build_mycelium; build_zinit; build_zclient ;;
  *) echo "usage: build-vendor.sh [mycelium|zinit|zinit-client|all]" >&2; exit 2 ;;
esac
