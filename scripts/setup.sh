#!/usr/bin/env bash
# Installs everything hero-init's build, tests and demo need on a fresh
# Debian 12 machine: Debian packages (as root, or through sudo) and the npm
# dependencies (Bun itself comes from npm). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  qemu-system-x86   # boots the test and demo VMs (TCG)
  musl-tools        # builds the static pre-init
  cpio              # round-trip checks of our cpio writer
  kmod              # depmod for the Debian kernel's modules.dep
  busybox-static    # busybox-only test rootfs, minimal template
  tini              # baseline for the reaping benchmark
  e2fsprogs         # ext4 images without root (mke2fs -d, debugfs, e2fsck)
  xz-utils zstd     # compressed initramfs and modules
  iproute2          # network namespaces and tap devices in tests
  util-linux        # unshare (pid namespaces in integration tests)
  procps            # pgrep in tests
  curl              # HTTP from inside test network namespaces
  git
  debootstrap       # the debian rootfs template
  skopeo umoci      # OCI image checks
  gcc libc6-dev     # a tiny test executable stands in for hero-init in injector unit tests
  b3sum             # reference BLAKE3 to check ours (mycelium addresses)
  chromium fonts-dejavu-core  # the UI tests drive Debian's headless Chromium (playwright-core)
  minisign          # interoperability tests of manifest signatures
  nginx             # the bootstrap server tests run real nginx (as the test user, own config)
  systemd           # systemd-notify: a real sd_notify sender for the notify: tests
  openssh-client    # ssh and ssh-keygen: the environment access VM test logs in to a real sshd
  dnsmasq-base      # the DHCP client's tests run real dnsmasq in a network namespace (no system service)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v npm >/dev/null; then
  echo "setup: installing nodejs and npm from Debian"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm ci` refuses this lock file (it lists the optional platform packages
  # of @biomejs/cli without their variants); `npm install` honours the lock.
  echo "setup: npm install"
  npm install --no-audit --no-fund --loglevel=error
fi
# The real mycelium and zinit, built once per machine from ../shared/vendor,
# and zclient (the zinit-client crate from crates.io, test/zinit-client)
# (cached outside the clone; instant when the cache is warm).
echo "setup: real mycelium and zinit, zclient (scripts/build-vendor.sh)"
bash scripts/build-vendor.sh all | sed 's/^/setup: /'
# The debian-systemd template's base (debootstrap from the host's Debian
# mirror: minutes once, then cached in ~/.cache/hero-init/templates, keyed
# by its template.toml): the systemd hand-off and node tests boot it.
echo "setup: debian-systemd template base (debootstrap on the first run only; cached)"
node_modules/.bin/bun -e 'import { loadTemplate, templateBase } from "./host/templates.ts";
const t0 = Date.now();
const dir = templateBase(loadTemplate("debian-systemd"));
console.log(`setup: debian-systemd base ${dir} (${Math.round((Date.now() - t0) / 1000)} s)`);'
echo "setup: ok (bun $(node_modules/.bin/bun --version))"
