/**
 * The tiny boot initramfs for disk VMs: the static pre-init at /init, the
 * modules a virtio ext4 root needs (resolved here from the kernel's
 * modules.dep, dependencies first) and /hero-root-modules listing them in
 * load order. The pre-init loads them, mounts root= and execs the disk's
 * hero-init (guest/preinit/preinit.c), so the ~110 MB binary is paged in
 * from the disk on demand instead of unpacked into RAM and started twice.
 * About 3 MB instead of the ~120 MB switch-root initramfs, which is here
 * too (hero-init and the disk modules: what hero.overlay= needs).
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { BASE_MODULES, ROOT_MODULES } from "../lib/kernel-modules.ts";
import { type CpioEntry, writeNewc } from "./cpio/newc.ts";
import { inject } from "./inject.ts";
import { type Kernel, moduleClosure } from "./kernel.ts";

/** The file the pre-init reads (absolute .ko paths, one a line); its presence selects disk boot. */
const LIST = "hero-root-modules";

/** The pre-init next to this program (the compiled hero-init) or dist/preinit from a checkout. */
function defaultPreinit(): string {
  if (process.argv[1]?.startsWith("/$bunfs/")) return join(dirname(process.execPath), "preinit");
  return join(import.meta.dir, "../dist/preinit");
}

/** Directory entries (0755) for `paths` and every parent of them, parents first. */
export function dirEntries(paths: string[]): CpioEntry[] {
  const all = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join("/"));
  }
  return [...all].sort().map((path) => ({ type: "dir", path, mode: 0o755 }));
}

/** The module files `files` (relative to kernel.modulesDir, from moduleClosure) under lib/modules/<version>, with their directories. */
export function moduleFileEntries(kernel: Kernel, files: string[]): CpioEntry[] {
  const modRoot = `lib/modules/${kernel.version}`;
  return [
    ...dirEntries(files.map((f) => dirname(`${modRoot}/${f}`))),
    ...files.map(
      (f): CpioEntry => ({
        type: "file",
        path: `${modRoot}/${f}`,
        mode: 0o644,
        data: new Uint8Array(readFileSync(join(kernel.modulesDir, f))),
      }),
    ),
  ];
}

/** The cpio entries of the tiny initramfs (no overlay module: the pre-init mounts the disk itself). */
export async function bootInitramfsEntries(
  kernel: Kernel,
  preinit?: Uint8Array,
): Promise<CpioEntry[]> {
  const files = await moduleClosure(
    kernel,
    ROOT_MODULES.filter((m) => m !== "overlay"),
  );
  const list = files.map((f) => `/lib/modules/${kernel.version}/${f}\n`).join("");
  return [
    ...dirEntries(["dev", "proc", "newroot"]),
    { type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    {
      type: "file",
      path: "init",
      mode: 0o755,
      data: preinit ?? new Uint8Array(readFileSync(defaultPreinit())),
    },
    ...moduleFileEntries(kernel, files),
    { type: "file", path: LIST, mode: 0o644, data: new TextEncoder().encode(list) },
  ];
}

/** Writes the tiny initramfs to `path` (uncompressed newc) and returns it. */
export async function writeBootInitramfs(
  path: string,
  kernel: Kernel,
  preinit?: Uint8Array,
): Promise<string> {
  writeFileSync(path, writeNewc(await bootInitramfsEntries(kernel, preinit)));
  return path;
}

/**
 * Writes the switch-root boot initramfs to `path`: hero-init with the disk
 * modules; it mounts root= and switches into it, and stays in the initramfs
 * when it cannot (guest/boot/switchroot.ts). Needed for hero.overlay=.
 */
export async function writeSwitchRootInitramfs(
  path: string,
  kernel: Kernel,
  mtime?: number,
): Promise<string> {
  await inject({
    format: "initramfs",
    target: path,
    createFrom: [],
    privateLoader: "always",
    kernelModules: { dir: kernel.modulesDir, names: [...ROOT_MODULES, ...BASE_MODULES] },
    mtime,
  });
  return path;
}
