/**
 * The tiny boot initramfs for disk VMs: the static pre-init at /init, the
 * modules a virtio ext4 root needs (resolved here from the kernel's
 * modules.dep, dependencies first) and /hero-root-modules listing them in
 * load order. The pre-init loads them, mounts root= and execs the disk's
 * hero-init (guest/preinit/preinit.c), so the ~110 MB binary is paged in
 * from the disk on demand instead of unpacked into RAM and started twice.
 * About 3 MB instead of the ~120 MB switch-root initramfs.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ROOT_MODULES } from "../lib/kernel-modules.ts";
import { type CpioEntry, writeNewc } from "./cpio/newc.ts";
import { type Kernel, moduleClosure } from "./kernel.ts";

/** The file the pre-init reads (absolute .ko paths, one a line); its presence selects disk boot. */
const LIST = "hero-root-modules";

/** The pre-init next to this program (the compiled hero-init) or dist/preinit from a checkout. */
function defaultPreinit(): string {
  if (process.argv[1]?.startsWith("/$bunfs/")) return join(dirname(process.execPath), "preinit");
  return join(import.meta.dir, "../dist/preinit");
}

/** The cpio entries of the tiny initramfs (no overlay module: the pre-init mounts the disk itself). */
export async function bootInitramfsEntries(
  kernel: Kernel,
  preinit?: Uint8Array,
): Promise<CpioEntry[]> {
  const names = ROOT_MODULES.filter((m) => m !== "overlay");
  const files = await moduleClosure(kernel, names);
  const modRoot = `lib/modules/${kernel.version}`;
  const dirs = new Set(["dev", "proc", "newroot"]);
  for (const f of files) {
    const parts = `${modRoot}/${f}`.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const e: CpioEntry[] = [...dirs].sort().map((path) => ({ type: "dir", path, mode: 0o755 }));
  e.push({ type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  e.push({
    type: "file",
    path: "init",
    mode: 0o755,
    data: preinit ?? new Uint8Array(readFileSync(defaultPreinit())),
  });
  for (const f of files)
    e.push({
      type: "file",
      path: `${modRoot}/${f}`,
      mode: 0o644,
      data: new Uint8Array(readFileSync(join(kernel.modulesDir, f))),
    });
  const list = files.map((f) => `/${modRoot}/${f}\n`).join("");
  e.push({ type: "file", path: LIST, mode: 0o644, data: new TextEncoder().encode(list) });
  return e;
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
