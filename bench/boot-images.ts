/**
 * The images bench/boot.ts boots: hero-init and the busybox baseline, each
 * as an initramfs and as an ext4 disk behind a boot initramfs, all with the
 * same kernel, network modules and 10 idle services, and a oneshot that
 * prints PID 1's smaps_rollup and /proc/meminfo 10 s after its services start
 * (idle: hero-init pages out its boot pages 3 s after READY).
 */
import { mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  dirEntries,
  moduleFileEntries,
  writeBootInitramfs,
  writeSwitchRootInitramfs,
} from "../host/boot-initramfs.ts";
import { type CpioEntry, writeNewc } from "../host/cpio/newc.ts";
import { type Kernel, moduleClosure } from "../host/kernel.ts";
import { ROOT_MODULES } from "../lib/kernel-modules.ts";
import { LAYOUT } from "../lib/layout.ts";
import { imageEntries, testVmToml } from "../test/vm/image.ts";

const MODULES = ["virtio_pci", "virtio_net"];
/** Where the test image keeps hero-init (test/vm/image.ts). */
const HERO_BINARY = `${LAYOUT.dir.replace(/^\//, "")}/hero-init`;
const SERVICES = 10;
const enc = new TextEncoder();
const text = (path: string, s: string, mode = 0o644): CpioEntry => ({
  type: "file",
  path,
  mode,
  data: enc.encode(s),
});
// Printed after the measurements (sleep 6), so it does not compete with them. (No ": ": YAML.)
const DMESG = "dmesg | grep 'Run /init as init process'";
// meminfo's categories too: bench/boot.ts reports what MemTotal − MemFree holds outside them.
// And the free pages on the per-CPU lists (zoneinfo's pageset `count:` lines), which MemFree and
// MemAvailable do not count: that is most of what the categories miss (docs/benchmarks.md, session 13).
// The last line marks the end, which bench/boot.ts waits for.
const MEM =
  "sleep 10; grep -E '^(Rss|Pss):' /proc/1/smaps_rollup; grep -E '^(MemTotal|MemAvailable|MemFree|Buffers|Cached|AnonPages|Slab|KernelStack|PageTables|VmallocUsed|Percpu):' /proc/meminfo; grep -E '^ +count:' /proc/zoneinfo | sed 's/^ *count:/PcpPages:/'; echo MemProbeEnd";

async function moduleEntries(kernel: Kernel, names: string[]): Promise<CpioEntry[]> {
  return moduleFileEntries(kernel, await moduleClosure(kernel, names));
}

async function insmods(kernel: Kernel, names: string[]): Promise<string> {
  const mods = await moduleClosure(kernel, names);
  return mods.map((m) => `insmod /lib/modules/${kernel.version}/${m} 2>/dev/null`).join("\n");
}

function busyboxBase(): CpioEntry[] {
  const e: CpioEntry[] = dirEntries([
    "bin",
    "sbin",
    "dev",
    "proc",
    "sys",
    "etc",
    "tmp",
    "www",
    "newroot",
  ]);
  e.push({ type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  e.push({ type: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 });
  e.push({
    type: "file",
    path: "bin/busybox",
    mode: 0o755,
    data: new Uint8Array(readFileSync("/bin/busybox")),
  });
  const applets = Bun.spawnSync(["/bin/busybox", "--list"]).stdout.toString().split("\n");
  for (const a of applets.filter((x) => x && x !== "busybox"))
    e.push({ type: "symlink", path: `bin/${a}`, target: "busybox" });
  return e;
}

/** The baseline's root: busybox /init script (mounts, insmod, static network) → busybox init → httpd. */
async function busyboxRoot(kernel: Kernel, initPath: string): Promise<CpioEntry[]> {
  const e = busyboxBase();
  e.push({ type: "symlink", path: "sbin/init", target: "../bin/busybox" });
  e.push(...(await moduleEntries(kernel, MODULES)));
  e.push(text("www/health", "ok\n"));
  e.push(
    text(
      initPath,
      `#!/bin/sh
export PATH=/bin:/sbin
[ -e /proc/self ] || mount -t proc proc /proc
mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
${await insmods(kernel, MODULES)}
while [ ! -e /sys/class/net/eth0 ]; do usleep 10000; done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
exec /sbin/init
`,
      0o755,
    ),
  );
  const sleeps = Array.from({ length: SERVICES }, () => "::respawn:/bin/sleep 100000\n").join("");
  e.push(text("etc/inittab", `::sysinit:/etc/rcS\n::once:/etc/mem.sh\n${sleeps}`));
  e.push(
    text(
      "etc/rcS",
      `#!/bin/sh
httpd -p 9999 -h /www
echo "busybox boot: READY at $(cut -d' ' -f1 /proc/uptime) s uptime"
`,
      0o755,
    ),
  );
  e.push(
    text(
      "etc/mem.sh",
      `#!/bin/sh
(${MEM}) | sed 's/^/busybox mem: /'
sleep 1; ${DMESG}
`,
      0o755,
    ),
  );
  return e;
}

/** The baseline's disk boot initramfs: busybox, the root modules, mount /dev/vda, switch_root. */
async function busyboxBootInitramfs(kernel: Kernel): Promise<CpioEntry[]> {
  const names = ROOT_MODULES.filter((m) => m !== "overlay");
  const e = busyboxBase();
  e.push(...(await moduleEntries(kernel, names)));
  e.push(
    text(
      "init",
      `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
${await insmods(kernel, names)}
while [ ! -e /dev/vda ]; do usleep 10000; done
mount -t ext4 /dev/vda /newroot
mount --move /dev /newroot/dev
mount --move /proc /newroot/proc
exec switch_root /newroot /init.sh
`,
      0o755,
    ),
  );
  return e;
}

/** hero-init's root: the test image (pre-init, glibc, busybox), 10 sleep services and the probes. */
async function heroRoot(kernel: Kernel): Promise<CpioEntry[]> {
  const svc = (name: string, y: string) => text(`etc/zinit/${name}.yaml`, y);
  const extra: CpioEntry[] = [{ type: "dir", path: "etc/zinit", mode: 0o755 }];
  extra.push(svc("mem", `exec: sh -c "${MEM}"\nlog: stdout\noneshot: true\n`));
  extra.push(svc("kinfo", `exec: sh -c "sleep 6; ${DMESG}"\nlog: stdout\noneshot: true\n`));
  for (let i = 0; i < SERVICES; i++) extra.push(svc(`idle${i}`, "exec: sleep 100000\n"));
  // An agent token, as deploy_vm writes into every VM: PID 1 then binds the guest agent before
  // READY, as a deployed VM's does (before session 12 the bench's image had none).
  extra.push(text(LAYOUT.agentToken.slice(1), "bench-agent-token-0123456789abcdef\n", 0o600));
  // Experiment (BENCH_APPEND="hero.init=/fault-around.sh"): map file pages one at a time on a
  // fault instead of 64 KB around it, to see how much of PID 1's PSS is fault-around.
  extra.push(
    text(
      "fault-around.sh",
      `#!/bin/sh
mount -t debugfs none /sys/kernel/debug 2>/dev/null || { mount -t sysfs sysfs /sys; mount -t debugfs none /sys/kernel/debug; }
echo 4096 > /sys/kernel/debug/fault_around_bytes
umount /sys/kernel/debug
exec /usr/lib/hero/hero-init "$@"
`,
      0o755,
    ),
  );
  return imageEntries({ kernel, modules: MODULES, busybox: true, vmToml: testVmToml(), extra });
}

/** Where the floor's program and its set-up script live in its image. */
const FLOOR_BINARY = "bun-floor";
const FLOOR_INIT = "floor-init.sh";

/**
 * Compiles bench/floor/pid1.ts with the flags scripts/build.sh gives hero-init (those that apply
 * to any program: bytecode, ESM, no bunfig/.env autoload); returns the executable's bytes.
 */
function floorBinary(dir: string): Uint8Array {
  const out = join(dir, FLOOR_BINARY);
  const p = Bun.spawnSync(
    [
      process.execPath,
      "build",
      "--compile",
      "--bytecode",
      "--format=esm",
      "--target=bun-linux-x64",
      "--no-compile-autoload-dotenv",
      "--no-compile-autoload-bunfig",
      join(import.meta.dir, "floor/pid1.ts"),
      "--outfile",
      out,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (p.exitCode !== 0) throw new Error(`bun build bench/floor/pid1.ts: ${p.stderr}`);
  return new Uint8Array(readFileSync(out));
}

/**
 * The Bun floor's root: the hero image without hero-init, plus the floor program and a busybox
 * script the pre-init runs first (`hero.init=/floor-init.sh`) that does what the baseline's /init
 * does (sysfs, modules, static network) and execs the floor.
 */
async function floorRoot(
  kernel: Kernel,
  heroEntries: CpioEntry[],
  dir: string,
): Promise<CpioEntry[]> {
  const mods = await moduleClosure(kernel, MODULES);
  const B = "/bin/busybox";
  return [
    ...heroEntries.filter((x) => x.path !== HERO_BINARY && !x.path.startsWith("etc/zinit")),
    { type: "file", path: FLOOR_BINARY, mode: 0o755, data: floorBinary(dir) },
    text(
      FLOOR_INIT,
      `#!/bin/sh
${B} mount -t sysfs sysfs /sys
${mods.map((m) => `${B} insmod /lib/modules/${kernel.version}/${m} 2>/dev/null`).join("\n")}
while [ ! -e /sys/class/net/eth0 ]; do ${B} usleep 10000; done
${B} ip link set lo up
${B} ip addr add 10.0.2.15/24 dev eth0
${B} ip link set eth0 up
${B} ip route add default via 10.0.2.2
exec /${FLOOR_BINARY}
`,
      0o755,
    ),
    text(
      "etc/floor-mem.sh",
      `#!/bin/sh
(${MEM}) | ${B} sed 's/^/bun-floor mem: /'
sleep 1; ${DMESG}
# Bun's start in the running VM, after the figures above: a fresh copy of the executable (pages
# QEMU's TCG has not translated yet), then the same copy again (translated: what KVM would pay).
${B} cp /${FLOOR_BINARY} /tmp/bun-copy
for i in 1 2; do echo "bun-floor rerun $i: $( { ${B} time /tmp/bun-copy --exit; } 2>&1 | ${B} grep real)"; done
`,
      0o755,
    ),
  ];
}

/** Writes cpio entries as a tree (no device nodes: devtmpfs provides them) and makes an ext4 of it. */
function ext4Of(entries: CpioEntry[], path: string, sizeMB: number): string {
  const stage = `${path}.stage`;
  rmSync(stage, { recursive: true, force: true });
  for (const x of entries) {
    const p = join(stage, x.path);
    if (x.type === "dir") mkdirSync(p, { recursive: true, mode: x.mode });
    else if (x.type === "file") writeFileSync(p, x.data, { mode: x.mode });
    else if (x.type === "symlink") symlinkSync(x.target, p);
  }
  const p = Bun.spawnSync(
    ["mke2fs", "-q", "-t", "ext4", "-d", stage, "-E", "root_owner=0:0", path, `${sizeMB}M`],
    { stderr: "pipe" },
  );
  rmSync(stage, { recursive: true, force: true });
  if (p.exitCode !== 0) throw new Error(`mke2fs ${path}: ${p.stderr}`);
  return path;
}

/** One bootable configuration. */
export interface Variant {
  name: string;
  initrd: string;
  /** An ext4 image copied fresh for each boot (vda), or none. */
  disk?: string;
  append?: string;
  ready: RegExp;
}

const HERO_READY = /hero-init boot: READY/;
const BUSYBOX_READY = /busybox boot: READY/;
const FLOOR_READY = /bun-floor boot: READY/;

/** Compresses `src` with a kernel-supported initramfs compressor; returns the new path. */
function compress(src: string, how: string): string {
  const cmd: Record<string, string> = {
    gzip: `gzip -6 -c '${src}'`,
    zstd: `zstd -q -10 -T0 -c '${src}'`,
    lz4: `lz4 -q -l -9 -c '${src}'`,
  };
  const dst = `${src}.${how}`;
  const p = Bun.spawnSync(["sh", "-c", `${cmd[how]} > '${dst}'`], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${how}: ${p.stderr}`);
  return dst;
}

/** What `BENCH_COMPRESS` may name besides whole-initramfs compressors: hero-init in an image. */
const IMAGED: Record<
  string,
  { fs: string; modules: string[]; make: (stage: string, img: string) => string[] }
> = {
  "sqfs-zstd": {
    fs: "squashfs",
    modules: ["loop", "squashfs"],
    make: (st, img) => [
      "mksquashfs",
      st,
      img,
      "-noappend",
      "-quiet",
      "-comp",
      "zstd",
      "-Xcompression-level",
      "19",
    ],
  },
  "sqfs-xz": {
    fs: "squashfs",
    modules: ["loop", "squashfs"],
    make: (st, img) => ["mksquashfs", st, img, "-noappend", "-quiet", "-comp", "xz"],
  },
  "erofs-lz4hc": {
    fs: "erofs",
    modules: ["loop", "crc32c_generic", "erofs"],
    make: (st, img) => ["mkfs.erofs", "-zlz4hc,12", img, st],
  },
};

/**
 * Experiment (`BENCH_COMPRESS=sqfs-zstd`, `sqfs-xz`, `erofs-lz4hc`): the hero initramfs with
 * hero-init inside a compressed read-only filesystem image instead of as a plain file. A busybox
 * `/init` loads loop and the filesystem's module, mounts the image at /hero-ro and execs the
 * pre-init, for which /usr/lib/hero/hero-init is now a link into the image. The kernel unpacks
 * the compressed bytes only, and the binary's pages are decompressed when touched, into page
 * cache the kernel can reclaim (and PID 1's page-out frees).
 */
async function imagedBinaryCpio(
  kernel: Kernel,
  heroEntries: CpioEntry[],
  dir: string,
  how: string,
): Promise<string> {
  const spec = IMAGED[how];
  if (!spec) throw new Error(`BENCH_COMPRESS: unknown "${how}"`);
  const bin = heroEntries.find((x) => x.type === "file" && x.path === HERO_BINARY);
  if (bin?.type !== "file") throw new Error(`no ${HERO_BINARY} in the hero image`);
  const stage = join(dir, `bin-${how}`);
  mkdirSync(stage, { recursive: true });
  writeFileSync(join(stage, "hero-init"), bin.data, { mode: 0o755 });
  const img = join(dir, `hero-bin.${how}`);
  const p = Bun.spawnSync(spec.make(stage, img), { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${how}: ${p.stderr}`);
  const mods = await moduleClosure(kernel, spec.modules);
  const entries = heroEntries.filter((x) => x.path !== HERO_BINARY && x.path !== "init");
  const have = new Set(entries.map((x) => x.path));
  entries.push(
    { type: "symlink", path: HERO_BINARY, target: "/hero-ro/hero-init" },
    { type: "dir", path: "hero-ro", mode: 0o755 },
    { type: "file", path: "hero-bin.img", mode: 0o644, data: new Uint8Array(readFileSync(img)) },
    ...moduleFileEntries(kernel, mods).filter((x) => !have.has(x.path)),
    text(
      "init",
      `#!/bin/sh
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t devtmpfs devtmpfs /dev
${mods.map((m) => `$B insmod /lib/modules/${kernel.version}/${m}`).join("\n")}
$B mount -t ${spec.fs} -o loop,ro /hero-bin.img /hero-ro || echo "hero-bin.img: mount failed"
exec /sbin/init "$@"
`,
      0o755,
    ),
  );
  const cpio = join(dir, `hero-${how}.cpio`);
  writeFileSync(cpio, writeNewc(entries));
  return cpio;
}

/** The variant name of a `BENCH_COMPRESS` entry (sqfs-zstd → hero_initramfs_sqfs_zstd). */
export function compressedVariant(how: string): string {
  return `hero_initramfs_${how.replace("-", "_")}`;
}

/**
 * All variants, written under `dir`; `compressions` adds hero initramfs variants (gzip, zstd, lz4,
 * or one of IMAGED: hero-init inside a squashfs/EROFS image);
 * each of `alternates` (name → another hero-init build) adds `hero_initramfs_<name>` and
 * `hero_disk_<name>`: the same images with that binary, for an A/B in one run.
 */
export async function buildVariants(
  kernel: Kernel,
  dir: string,
  compressions: string[],
  alternates: Map<string, string> = new Map(),
): Promise<Variant[]> {
  const heroEntries = await heroRoot(kernel);
  const heroCpio = join(dir, "hero.cpio");
  writeFileSync(heroCpio, writeNewc(heroEntries));
  const bbCpio = join(dir, "busybox.cpio");
  writeFileSync(bbCpio, writeNewc(await busyboxRoot(kernel, "init")));
  const heroDisk = ext4Of(heroEntries, join(dir, "hero.ext4"), 400);
  const bbDisk = ext4Of(await busyboxRoot(kernel, "init.sh"), join(dir, "busybox.ext4"), 64);
  const bbBoot = join(dir, "busybox-boot.cpio");
  writeFileSync(bbBoot, writeNewc(await busyboxBootInitramfs(kernel)));
  const tiny = await writeBootInitramfs(join(dir, "tiny.cpio"), kernel);
  // Today's disk path: hero-init in a boot initramfs switches root (guest/boot/switchroot.ts).
  const switchroot = await writeSwitchRootInitramfs(join(dir, "switchroot.cpio"), kernel);
  const floorEntries = await floorRoot(kernel, heroEntries, dir);
  const floorCpio = join(dir, "floor.cpio");
  writeFileSync(floorCpio, writeNewc(floorEntries));
  const floorDisk = ext4Of(floorEntries, join(dir, "floor.ext4"), 400);
  const root = "root=/dev/vda rw";
  const floorInit = `hero.init=/${FLOOR_INIT}`;
  const v: Variant[] = [
    { name: "busybox_initramfs", initrd: bbCpio, ready: BUSYBOX_READY },
    { name: "hero_initramfs", initrd: heroCpio, ready: HERO_READY },
    { name: "bun_floor_initramfs", initrd: floorCpio, append: floorInit, ready: FLOOR_READY },
    { name: "busybox_disk", initrd: bbBoot, disk: bbDisk, append: root, ready: BUSYBOX_READY },
    { name: "hero_disk", initrd: tiny, disk: heroDisk, append: root, ready: HERO_READY },
    {
      name: "bun_floor_disk",
      initrd: tiny,
      disk: floorDisk,
      append: `${root} ${floorInit}`,
      ready: FLOOR_READY,
    },
    {
      name: "hero_disk_switchroot",
      initrd: switchroot,
      disk: heroDisk,
      append: root,
      ready: HERO_READY,
    },
  ];
  for (const c of compressions) {
    const initrd =
      c in IMAGED ? await imagedBinaryCpio(kernel, heroEntries, dir, c) : compress(heroCpio, c);
    v.push({ name: compressedVariant(c), initrd, ready: HERO_READY });
  }
  for (const [name, bin] of alternates) {
    const data = new Uint8Array(readFileSync(bin));
    const entries = heroEntries.map((x) =>
      x.type === "file" && x.path === HERO_BINARY ? { ...x, data } : x,
    );
    if (!entries.some((x, i) => x !== heroEntries[i]))
      throw new Error(`no ${HERO_BINARY} in the hero image`);
    const cpio = join(dir, `hero-${name}.cpio`);
    writeFileSync(cpio, writeNewc(entries));
    const disk = ext4Of(entries, join(dir, `hero-${name}.ext4`), 400);
    v.push({ name: `hero_initramfs_${name}`, initrd: cpio, ready: HERO_READY });
    v.push({ name: `hero_disk_${name}`, initrd: tiny, disk, append: root, ready: HERO_READY });
  }
  return v;
}

/** A fresh sparse copy of a disk image for one boot. */
export function freshDisk(src: string, dst: string): string {
  const p = Bun.spawnSync(["cp", "--sparse=always", src, dst], { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`cp ${src}: ${p.stderr}`);
  return dst;
}
