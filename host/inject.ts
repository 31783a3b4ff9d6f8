/**
 * `inject`: writes hero-init (as PID 1 through the pre-init), the manifest's
 * `[vm]` binaries, service files, the per-VM config and secrets into a
 * rootfs of any supported format. Everything is read, downloaded, verified
 * and planned before the first write; a plan already in effect changes
 * nothing; `dryRun` only returns the plan.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { HeroError } from "../lib/errors.ts";
import { LAYOUT } from "../lib/layout.ts";
import { parseManifest } from "../lib/manifest.ts";
import { readServiceText } from "../lib/service-file.ts";
import { parseServiceFile, SERVICE_NAME_RE } from "../lib/service-spec.ts";
import { parseVmConfig } from "../lib/vm-config.ts";
import { fetchBinary } from "./cache.ts";
import type { CpioEntry } from "./cpio/newc.ts";
import { neededGlibcVersions, usePrivateLoader } from "./elf/private-loader.ts";
import { dirFormat } from "./formats/dir.ts";
import { ext4Format } from "./formats/ext4.ts";
import { initramfsFormat } from "./formats/initramfs.ts";
import { ociFormat } from "./formats/oci.ts";
import type { RootfsFormat } from "./formats/types.ts";
import { glibcProblem, resolve } from "./inspect.ts";
import { moduleLoadPlan } from "./kernel.ts";
import { buildPlan, type PlanEntry, type PlanInputs, sha256 } from "./plan.ts";

/** The rootfs formats. */
export const FORMATS = ["dir", "ext4", "initramfs", "oci"] as const;
/** One of {@link FORMATS}. */
export type FormatName = (typeof FORMATS)[number];

/** What to inject where. */
export interface InjectOptions {
  format: FormatName;
  /** The rootfs: a directory, an ext4 image, an initramfs file. */
  target: string;
  /** For a new initramfs: entries of the rootfs to build it from. */
  createFrom?: CpioEntry[];
  /** hero-init binary; default: this executable when compiled, else dist/hero-init. */
  heroInit?: string;
  /** Pre-init binary; default: `preinit` next to hero-init. */
  preinit?: string;
  /** bootstrapper.toml (its `[vm]` binaries are installed). */
  manifest?: string;
  /** vm.toml text to write (validated). */
  vmConfig?: string;
  /** A directory of zinit service files, or name → YAML. */
  services?: string | Record<string, string>;
  /** Secret files: guest path → content (0600 root). */
  secrets?: Record<string, Uint8Array>;
  /** Kernel modules for the VM's kernel: host dir lib/modules/<version> and module names. */
  kernelModules?: { dir: string; names: string[] };
  /** Also write /init (the kernel's entry point in an initramfs); implied by format "initramfs". */
  bootsAsInitramfs?: boolean;
  /** "auto" (default): only when the rootfs lacks a usable glibc. */
  privateLoader?: "auto" | "always" | "never";
  cacheDir?: string;
  dryRun?: boolean;
  /** Timestamps for everything written (SOURCE_DATE_EPOCH). */
  mtime?: number;
  progress?: (msg: string) => void;
}

/** What `inject` did (or would do). */
export interface InjectReport {
  format: FormatName;
  target: string;
  plan: PlanEntry[];
  changed: number;
  dryRun: boolean;
  privateLoader: boolean;
  notes: string[];
}

const HOST_LIBDIR = "/lib/x86_64-linux-gnu";
// libgcc_s: for glibc-linked Rust [vm] binaries (mycelium) run through the private loader.
const PRIVATE_LIBS = ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "libgcc_s.so.1"];

function defaultHeroInit(): string {
  // A compiled binary runs its bundle from Bun's embedded file system.
  if (process.argv[1]?.startsWith("/$bunfs/")) return process.execPath; // the compiled hero-init itself
  return join(import.meta.dir, "../dist/hero-init");
}

function readBinary(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new HeroError("read", `${what}: ${(e as Error).message}`, { file: path });
  }
}

/** Opens the target in its format (exported for tests and templates). */
export function openFormat(
  o: Pick<InjectOptions, "format" | "target" | "createFrom">,
): RootfsFormat {
  switch (o.format) {
    case "dir":
      return dirFormat(o.target);
    case "ext4":
      return ext4Format(o.target);
    case "initramfs":
      return initramfsFormat(o.target, o.createFrom ? { base: o.createFrom } : undefined);
    case "oci": {
      // "layout:tag" selects a tagged manifest, as skopeo's oci: transport does.
      const [layout, tag] = o.target.split(/:(?=[^/]*$)/) as [string, string | undefined];
      return ociFormat(layout, tag);
    }
    default:
      throw new HeroError(
        "format",
        `unknown rootfs format "${o.format as string}" (use ${FORMATS.join(", ")})`,
      );
  }
}

/**
 * Service files to inject, checked as the guest's loader will read them
 * (regular files only, size, YAML, duplicate keys, alias expansion, schema):
 * a file the guest would refuse is refused here, before any write.
 */
function readServices(s: InjectOptions["services"]): Record<string, string> {
  if (s === undefined) return {};
  const files = new Map<string, string>();
  if (typeof s === "string") {
    for (const f of readdirSync(s)
      .filter((f) => f.endsWith(".yaml"))
      .sort())
      files.set(f.slice(0, -5), readServiceText(join(s, f)));
  } else for (const [name, text] of Object.entries(s)) files.set(name, text);
  for (const [name, text] of files) {
    if (!SERVICE_NAME_RE.test(name))
      throw new HeroError("path", `bad service name "${name}"`, { field: "services" });
    parseServiceFile(text, `${name}.yaml`); // throws with file/line/field
  }
  return Object.fromEntries(files);
}

function readModules(m: InjectOptions["kernelModules"]): PlanInputs["modules"] {
  if (!m) return null;
  const version = basename(m.dir);
  const plan = moduleLoadPlan(m.dir, m.names);
  if (plan.missing.length)
    throw new HeroError("modules", `not in ${m.dir}: ${plan.missing.join(", ")}`);
  const files: Record<string, Uint8Array> = {};
  for (const rel of plan.load) files[rel] = new Uint8Array(readFileSync(join(m.dir, rel)));
  for (const f of ["modules.dep", "modules.builtin", "modules.order"]) {
    if (existsSync(join(m.dir, f))) files[f] = new Uint8Array(readFileSync(join(m.dir, f)));
  }
  // The guest reads this short list instead of modules.dep (lib/kernel-modules.ts).
  files[LAYOUT.moduleLoadOrder] = new TextEncoder().encode(plan.loadOrder);
  return { version, files };
}

async function same(fmt: RootfsFormat, e: PlanEntry): Promise<boolean> {
  const cur = await fmt.lookup(e.path);
  if (!cur) return false;
  // A directory may be a symlink to one (usr-merge: /sbin -> usr/sbin); hero-init's own have their mode.
  if (e.kind === "dir") {
    const d = cur.type === "symlink" ? (await resolve(fmt, e.path))?.entry : cur;
    return d?.type === "dir" && (!e.own || d.mode === e.mode);
  }
  if (e.kind === "symlink") return cur.type === "symlink" && cur.target === e.target;
  return (
    cur.type === "file" &&
    cur.mode === e.mode &&
    cur.uid === e.uid &&
    sha256(await cur.data()) === e.sha256
  );
}

/** Injects; throws HeroError (target untouched) on any bad input. */
export async function inject(o: InjectOptions): Promise<InjectReport> {
  const say = o.progress ?? (() => {});
  const mtime = o.mtime ?? Number(process.env.SOURCE_DATE_EPOCH ?? 0);
  if (!Number.isInteger(mtime) || mtime < 0)
    throw new HeroError("mtime", `SOURCE_DATE_EPOCH must be a non-negative integer, got ${mtime}`);
  const fmt = openFormat(o);
  if (!(await fmt.exists()))
    throw new HeroError("target", `${o.target} does not exist`, { file: o.target });

  // 1. Read and verify every input.
  const notes0: string[] = [];
  const services = readServices(o.services);
  if (o.vmConfig !== undefined) {
    const { errors } = parseVmConfig(o.vmConfig, "vm.toml");
    if (errors.length) throw errors[0] as HeroError;
  }
  const binaries: NonNullable<PlanInputs["binaries"]> = [];
  if (o.manifest) {
    const m = parseManifest(readFileSync(o.manifest, "utf8"), o.manifest);
    for (const b of m.vm.binaries) {
      say(`fetching ${b.name} ${b.version}`);
      let shown = -1;
      const onBytes = (done: number, total: number) => {
        const pct = Math.floor((done * 100) / total);
        if (pct >= shown + 10 || done === total) {
          shown = pct;
          say(`fetching ${b.name} ${b.version}: ${pct}% of ${total} bytes`);
        }
      };
      binaries.push({ binary: b, data: await fetchBinary(b, o.cacheDir, onBytes) });
    }
  }
  // The manifest may pin hero-init and its pre-init like any [vm] binary; else this executable's.
  const pin = (name: string) => {
    const i = binaries.findIndex((b) => b.binary.name === name);
    return i < 0 ? null : (binaries.splice(i, 1)[0]?.data ?? null);
  };
  const pinnedHero = pin("hero-init");
  const pinnedPreinit = pin("preinit");
  const heroPath = o.heroInit ?? defaultHeroInit();
  let heroInit = pinnedHero ?? readBinary(heroPath, "hero-init binary");
  const preinit =
    pinnedPreinit ??
    readBinary(o.preinit ?? join(dirname(realpathSync(heroPath)), "preinit"), "pre-init binary");
  if (pinnedHero) notes0.push("hero-init: the version the manifest pins");
  const modules = readModules(o.kernelModules);

  // 2. Inspect the target.
  const mode = o.privateLoader ?? "auto";
  const problem = mode === "auto" ? await glibcProblem(fmt, neededGlibcVersions(heroInit)) : null;
  const usePrivate = mode === "always" || (mode === "auto" && problem !== null);
  let privateLibs: Record<string, Uint8Array> | null = null;
  const notes: string[] = [...notes0];
  if (usePrivate) {
    heroInit = usePrivateLoader(heroInit);
    privateLibs = {
      "ld.so": readBinary(realpathSync("/lib64/ld-linux-x86-64.so.2"), "host glibc loader"),
    };
    for (const l of PRIVATE_LIBS)
      privateLibs[l] = readBinary(realpathSync(`${HOST_LIBDIR}/${l}`), `host ${l}`);
    notes.push(`private loader: ${problem ?? "forced"}`);
  }
  const moduleInputs =
    modules && !(await fmt.lookup(`/lib/modules/${modules.version}/modules.dep`)) ? modules : null;

  // 3. Plan (validates every path), then compare with what is there.
  const plan = buildPlan({
    heroInit,
    preinit,
    privateLibs,
    binaries,
    services,
    vmConfig: o.vmConfig ?? null,
    secrets: o.secrets,
    modules: moduleInputs,
    initramfs: o.format === "initramfs" || !!o.bootsAsInitramfs,
  });
  const report: InjectReport = {
    format: o.format,
    target: o.target,
    plan,
    changed: 0,
    dryRun: !!o.dryRun,
    privateLoader: usePrivate,
    notes,
  };
  if (o.dryRun) return report;
  let upToDate = true;
  for (const e of plan) {
    if (!(await same(fmt, e))) {
      upToDate = false;
      break;
    }
  }
  if (upToDate) {
    notes.push("already up to date: nothing written");
    return report;
  }
  say(`writing ${plan.length} entries into ${o.target} (${o.format})`);
  const res = await fmt.apply(plan, { mtime, progress: say });
  report.changed = res.changed;
  notes.push(...res.notes);
  return report;
}
