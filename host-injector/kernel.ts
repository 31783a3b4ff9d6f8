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
} from "node:fs";
import { join } from "node:path";
import { moduleName, parseModulesDep, planModules } from "../init/boot/modules-dep.ts";
import { defaultCacheDir } from "./cache.ts";

const CACHE = join(defaultCacheDir(), "kernel");

/** An unpacked kernel. */
export interface Kernel {
  version: string;
  vmlinuz: string;
  /** .../lib/modules/<version>, with modules.dep. */
  modulesDir: string;
}

function sh(cmd: string[], cwd?: string): string {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0)
    throw new Error(`${cmd.join(" ")} failed (${p.exitCode}): ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

/** The linux-image-<ver>-amd64 package that linux-image-amd64 depends on. */
function imagePackage(): string {
  const find = () =>
    /Depends: (linux-image-[0-9][^\s]*-amd64)/.exec(
      sh(["apt-cache", "depends", "linux-image-amd64"]),
    )?.[1];
  let pkg: string | undefined;
  try {
    pkg = find();
  } catch {
    pkg = undefined;
  }
  if (!pkg) {
    sh(["apt-get", "update", "-qq"]);
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
    sh(["apt-get", "download", "-q", pkg], tmp);
    const deb = readdirSync(tmp).find((f) => f.endsWith(".deb"));
    if (!deb) throw new Error(`apt-get download ${pkg} produced no .deb`);
    const root = join(tmp, "root");
    sh(["dpkg-deb", "-x", join(tmp, deb), root]);
    const version = readdirSync(join(root, "lib/modules"))[0];
    if (!version) throw new Error(`${deb} has no lib/modules`);
    sh(["depmod", "-b", root, version]);
    Bun.write(join(root, ".complete"), `${pkg}\n`);
    await Bun.sleep(0);
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

/** Module files (relative to modulesDir) for `names` and their dependencies, dependencies first. */
export async function moduleClosure(kernel: Kernel, names: string[]): Promise<string[]> {
  const dep = parseModulesDep(readFileSync(join(kernel.modulesDir, "modules.dep"), "utf8"));
  const builtin = new Set(
    readFileSync(join(kernel.modulesDir, "modules.builtin"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map(moduleName),
  );
  const plan = planModules(names, dep, builtin, new Set());
  if (plan.missing.length)
    throw new Error(`modules not in ${kernel.version}: ${plan.missing.join(", ")}`);
  return plan.load;
}
