/**
 * The Debian kernel hero-init's VMs boot (tests, demo, `hero-init vm run`): linux-image-amd64's current
 * dependency, fetched with `apt-get download`, unpacked with dpkg-deb, and
 * given a modules.dep by depmod (the .deb carries none). Cached under
 * <cache>/kernel/<package>; safe against concurrent callers (build in a temp
 * dir, rename into place).
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { atomicWrite } from "../lib/atomic-file.ts";
import {
  formatLoadOrder,
  type ModulePlan,
  moduleName,
  parseModulesDep,
  planModules,
} from "../lib/kernel-modules.ts";
import { runChecked } from "../sys/command.ts";
import { defaultCacheDir } from "./cache.ts";

const CACHE = join(defaultCacheDir(), "kernel");

/** An unpacked kernel. */
export interface Kernel {
  version: string;
  vmlinuz: string;
  /** .../lib/modules/<version>, with modules.dep. */
  modulesDir: string;
}

/** The linux-image-<ver>-amd64 package that linux-image-amd64 depends on. */
function imagePackage(): string {
  const find = () =>
    /Depends: (linux-image-[0-9][^\s]*-amd64)/.exec(
      new TextDecoder().decode(runChecked(["apt-cache", "depends", "linux-image-amd64"]).stdout),
    )?.[1];
  let pkg: string | undefined;
  try {
    pkg = find();
  } catch {
    pkg = undefined;
  }
  if (!pkg) {
    runChecked(["apt-get", "update", "-qq"]);
    pkg = find();
  }
  if (!pkg) throw new Error("cannot resolve linux-image-amd64's kernel package (apt-get update?)");
  return pkg;
}

function loaded(dir: string): Kernel | null {
  const boot = join(dir, "boot");
  if (!existsSync(join(dir, ".complete"))) return null;
  const vmlinuz = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (!vmlinuz) return null;
  const version = vmlinuz.slice("vmlinuz-".length);
  return { version, vmlinuz: join(boot, vmlinuz), modulesDir: join(dir, "lib/modules", version) };
}

/** Returns the cached kernel, downloading and preparing it on first use. */
export async function ensureKernel(): Promise<Kernel> {
  mkdirSync(CACHE, { recursive: true });
  const pkg = imagePackage();
  const dir = join(CACHE, pkg);
  const have = existsSync(dir) ? loaded(dir) : null;
  if (have) return have;
  const tmp = mkdtempSync(join(CACHE, ".tmp-"));
  try {
    runChecked(["apt-get", "download", "-q", pkg], { cwd: tmp });
    const deb = readdirSync(tmp).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    const root = join(tmp, "root");
    runChecked(["dpkg-deb", "-x", join(tmp, deb), root]);
    const version = readdirSync(join(root, "lib/modules"))[0];
    if (!version) throw new Error(`${deb} has no lib/modules`);
    runChecked(["depmod", "-b", root, version]);
    // Written synchronously before the rename: a reader that sees the
    // directory must also see the marker.
    writeFileSync(join(root, ".complete"), `${pkg}\n`);
    try {
      renameSync(root, dir);
    } catch (e) {
      if (!existsSync(dir)) throw e; // another run won the race: use theirs
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  const k = loaded(dir);
  if (!k) throw new Error(`kernel in ${dir} is incomplete`);
  return k;
}

/**
 * The modules `names` need in a host lib/modules/<version> dir (with their
 * dependencies, dependencies first) and the load-order file the guest reads
 * instead of modules.dep (lib/kernel-modules.ts).
 */
export function moduleLoadPlan(
  dir: string,
  names: readonly string[],
): ModulePlan & { loadOrder: string } {
  const dep = parseModulesDep(readFileSync(join(dir, "modules.dep"), "utf8"));
  const builtin = new Set(
    readFileSync(join(dir, "modules.builtin"), "utf8").split("\n").filter(Boolean).map(moduleName),
  );
  const plan = planModules(names, dep, builtin, new Set());
  return { ...plan, loadOrder: formatLoadOrder(basename(dir), plan, dep) };
}

/** Module files (relative to modulesDir) for `names` and their dependencies, dependencies first. */
export async function moduleClosure(kernel: Kernel, names: string[]): Promise<string[]> {
  const plan = moduleLoadPlan(kernel.modulesDir, names);
  if (plan.missing.length)
    throw new Error(`modules not in ${kernel.version}: ${plan.missing.join(", ")}`);
  return plan.load;
}

/**
 * The uncompressed kernel (ELF vmlinux) inside the bzImage, cached beside it
 * as boot/vmlinux-<version>; pass it as `kernel: { vmlinuz: path }` to
 * bootVm. QEMU boots it through its PVH entry point (CONFIG_PVH=y here),
 * which skips the bzImage's XZ decompressor: under TCG that decompressor
 * is most of the time before the kernel's first line (measured: QEMU start →
 * busybox init powering off 6.3–6.8 s with vmlinuz, 2.7–2.9 s with vmlinux).
 * It costs ~66 MB of cache. Opt-in, because it is not how production VMs boot.
 */
export async function ensureVmlinux(kernel: Kernel): Promise<string> {
  const out = join(dirname(kernel.vmlinuz), `vmlinux-${kernel.version}`);
  if (existsSync(out)) return out;
  const bz = new Uint8Array(readFileSync(kernel.vmlinuz));
  const view = new DataView(bz.buffer, bz.byteOffset, bz.byteLength);
  // x86 boot protocol ≥ 2.08: the compressed payload sits payload_offset
  // (0x248) bytes into the protected-mode code, which follows the real-mode
  // setup sectors (count at 0x1f1, 0 meaning 4) and the boot sector.
  if (view.getUint32(0x202, true) !== 0x53726448)
    throw new Error(`${kernel.vmlinuz}: no bzImage header`);
  const setupSects = bz[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + view.getUint32(0x248, true);
  const payload = bz.subarray(start, start + view.getUint32(0x24c, true));
  const magic = Buffer.from(payload.subarray(0, 6)).toString("hex");
  const tool = magic.startsWith("fd377a585a00")
    ? ["xz", "-dc", "--single-stream"]
    : magic.startsWith("28b52ffd")
      ? ["zstd", "-dc"]
      : magic.startsWith("1f8b")
        ? ["gzip", "-dc"]
        : null;
  if (!tool) throw new Error(`${kernel.vmlinuz}: unknown payload compression (${magic})`);
  const p = Bun.spawnSync(tool, { stdin: payload, stdout: "pipe", stderr: "pipe" });
  const elf = p.stdout;
  if (p.exitCode !== 0 || elf.subarray(0, 4).toString("latin1") !== "\x7fELF")
    throw new Error(`${tool.join(" ")} on ${kernel.vmlinuz} failed: ${p.stderr.toString().trim()}`);
  // Written under a unique name and renamed: a reader never sees half a file.
  atomicWrite(out, elf);
  return out;
}
