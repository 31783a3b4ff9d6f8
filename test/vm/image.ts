/**
 * Builds test initramfs images with the project's own cpio writer: hero-init
 * as PID 1 (pre-init at /init), glibc either in the usual places or in the
 * private loader dir, kernel modules with their dependencies, optional
 * busybox, a vm.toml and any extra files a test needs.
 */

import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type CpioEntry, writeNewc } from "../../host/cpio/newc.ts";
import { usePrivateLoader } from "../../host/elf/private-loader.ts";
import { type Kernel, moduleClosure, moduleLoadPlan } from "../../host/kernel.ts";
import { LAYOUT } from "../../lib/layout.ts";

const ROOT = join(import.meta.dir, "../..");
const GLIBC_LIBS = ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2"];
const HOST_LIBDIR = "/lib/x86_64-linux-gnu";
const HOST_LOADER = "/lib64/ld-linux-x86-64.so.2";

/** Modules every test VM gets: virtio network and the power button. */
export const TEST_MODULES = ["virtio_net", "virtio_pci", "button", "evdev"];

/** How a test image is put together. */
export interface ImageOptions {
  kernel: Kernel;
  /** "glibc": libs in /lib like a distro; "private": no glibc, hero-init uses its private loader. */
  libc?: "glibc" | "private";
  /** Module names to ship (with dependencies). Default: TEST_MODULES. Empty: no /lib at all. */
  modules?: string[];
  /** Add Debian's static busybox at /bin/busybox with its applet links. */
  busybox?: boolean;
  /** Leave hero-init out (the pre-init must then power off with a message). */
  omitHeroInit?: boolean;
  /** Text of /etc/hero-init/vm.toml, if any. */
  vmToml?: string;
  /** Extra entries (service files, scripts…). */
  extra?: CpioEntry[];
}

let binCache: Uint8Array | null = null;
function heroInitBinary(): Uint8Array {
  binCache ??= new Uint8Array(readFileSync(join(ROOT, "dist/hero-init")));
  return binCache;
}

function dirs(paths: string[]): CpioEntry[] {
  const all = new Set<string>();
  for (const p of paths) {
    const parts = p.split("/");
    for (let i = 1; i <= parts.length; i++) all.add(parts.slice(0, i).join("/"));
  }
  return [...all].sort().map((path) => ({ type: "dir", path, mode: 0o755 }) as CpioEntry);
}

function hostFile(path: string, as: string, mode = 0o755): CpioEntry {
  return { type: "file", path: as, mode, data: new Uint8Array(readFileSync(realpathSync(path))) };
}

const BUSYBOX_APPLETS = [
  "sh",
  "ls",
  "cat",
  "echo",
  "sleep",
  "kill",
  "ps",
  "mount",
  "sync",
  "true",
  "false",
  "id",
  "stat",
];

/** Returns the cpio entries of a test image. */
export async function imageEntries(o: ImageOptions): Promise<CpioEntry[]> {
  const libc = o.libc ?? "glibc";
  const modules = o.modules ?? TEST_MODULES;
  const priv = LAYOUT.dir.slice(1);
  const e: CpioEntry[] = [];
  const dirList = ["dev", "proc", "sys", "run", "tmp", "etc/hero-init", "sbin", "usr/bin", priv];
  if (o.busybox) dirList.push("bin");
  const modRoot = `lib/modules/${o.kernel.version}`;
  const modFiles = modules.length ? await moduleClosure(o.kernel, modules) : [];
  for (const m of modFiles) dirList.push(join(modRoot, m, ".."));
  if (libc === "glibc") dirList.push("lib/x86_64-linux-gnu", "lib64");
  e.push(...dirs(dirList));
  e.push({ type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  e.push({ type: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 });
  e.push(hostFile(join(ROOT, "dist/preinit"), "sbin/init"));
  e.push({ type: "symlink", path: "init", target: "sbin/init" });
  // The supervisor's exec helper is the pre-init binary under another name.
  e.push({ type: "symlink", path: `${priv}/hero-exec`, target: "/sbin/init" });
  if (!o.omitHeroInit) {
    const bin = heroInitBinary();
    e.push({
      type: "file",
      path: `${priv}/hero-init`,
      mode: 0o755,
      data: libc === "private" ? usePrivateLoader(bin) : bin,
    });
    e.push({ type: "symlink", path: "usr/bin/hero-init", target: `${LAYOUT.dir}/hero-init` });
    e.push({ type: "symlink", path: "usr/bin/zinit", target: "hero-init" });
  }
  if (libc === "glibc") {
    for (const l of GLIBC_LIBS)
      e.push(hostFile(`${HOST_LIBDIR}/${l}`, `lib/x86_64-linux-gnu/${l}`));
    e.push(hostFile(HOST_LOADER, "lib64/ld-linux-x86-64.so.2"));
  } else {
    for (const l of GLIBC_LIBS) e.push(hostFile(`${HOST_LIBDIR}/${l}`, `${priv}/${l}`));
    e.push(hostFile(HOST_LOADER, `${priv}/ld.so`));
  }
  if (modFiles.length) {
    for (const m of modFiles)
      e.push(hostFile(join(o.kernel.modulesDir, m), join(modRoot, m), 0o644));
    for (const f of ["modules.dep", "modules.builtin", "modules.order"]) {
      e.push(hostFile(join(o.kernel.modulesDir, f), join(modRoot, f), 0o644));
    }
    // The injector's load-order file, so a test boot takes the same path as a deployed VM.
    e.push({
      type: "file",
      path: join(modRoot, LAYOUT.moduleLoadOrder),
      mode: 0o644,
      data: new TextEncoder().encode(moduleLoadPlan(o.kernel.modulesDir, modules).loadOrder),
    });
  }
  if (o.busybox) {
    e.push(hostFile("/bin/busybox", "bin/busybox"));
    for (const a of BUSYBOX_APPLETS)
      e.push({ type: "symlink", path: `bin/${a}`, target: "busybox" });
  }
  if (o.vmToml !== undefined) {
    e.push({
      type: "file",
      path: "etc/hero-init/vm.toml",
      mode: 0o600,
      data: new TextEncoder().encode(o.vmToml),
    });
  }
  e.push(...(o.extra ?? []));
  return e;
}

/** Writes a test image to `path` and returns it. */
export async function buildImage(path: string, o: ImageOptions): Promise<string> {
  writeFileSync(path, writeNewc(await imageEntries(o)));
  return path;
}

/** The vm.toml test VMs use: QEMU user networking, UI reachable through the host forward. */
export function testVmToml(extra = ""): string {
  return `hostname = "hero-test"
modules = ["virtio_pci", "virtio_net"]

[network]
dns = ["10.0.2.3"]

[[network.interfaces]]
name = "eth0"
address = "10.0.2.15/24"
gateway = "10.0.2.2"

[ui]
listen = ["0.0.0.0"]
allow = ["10.0.2.2/32"]
${extra}`;
}

/** Service files for /etc/zinit in a test image: name → YAML. */
export function serviceFiles(files: Record<string, string>): CpioEntry[] {
  return [
    { type: "dir", path: "etc/zinit", mode: 0o755 },
    ...Object.entries(files).map(
      ([n, y]) =>
        ({
          type: "file",
          path: `etc/zinit/${n}.yaml`,
          mode: 0o644,
          data: new TextEncoder().encode(y),
        }) as CpioEntry,
    ),
  ];
}
