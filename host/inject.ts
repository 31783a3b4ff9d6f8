/**
 * `inject`: writes hero-init (as PID 1 through the pre-init), the manifest's
 * `[vm]` binaries and config files, service files, the per-VM config and
 * secrets into a rootfs of any supported format. Everything is read,
 * downloaded, verified and planned before the first write; a plan already
 * in effect changes nothing; `dryRun` only returns the plan.
 */
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { type ConfigFile, idOf, sectionFiles } from "../lib/config-files.ts";
import { HeroError, isHeroError } from "../lib/errors.ts";
import { LAYOUT } from "../lib/layout.ts";
import { type Environment, type Manifest, parseManifest } from "../lib/manifest.ts";
import { readServiceText } from "../lib/service-file.ts";
import { parseServiceFile, SERVICE_NAME_RE } from "../lib/service-spec.ts";
import { parseVmConfig } from "../lib/vm-config.ts";
import { fetchBinary, fetchVerified } from "./cache.ts";
import type { CpioEntry } from "./cpio/newc.ts";
import { neededGlibcVersions, usePrivateLoader } from "./elf/private-loader.ts";
import { dirFormat } from "./formats/dir.ts";
import { ext4Format } from "./formats/ext4.ts";
import { initramfsFormat } from "./formats/initramfs.ts";
import { ociFormat } from "./formats/oci.ts";
import type { RootfsFormat } from "./formats/types.ts";
import { glibcProblem, resolve } from "./inspect.ts";
import { moduleLoadPlan } from "./kernel.ts";
import {
  buildPlan,
  type PlanEntry,
  type PlanInputs,
  type PlannedConfigFile,
  sha256,
} from "./plan.ts";

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
  /** bootstrapper.toml (its `[vm]` binaries and config files are installed). */
  manifest?: string;
  /**
   * The environment whose `[[env.<env>.vm.files]]` replace the top-level
   * config files; default: vm.toml's `[update] env`, else the top-level ones only.
   */
  env?: Environment;
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

type Say = (msg: string) => void;

/** A manifest config file and its verified bytes; its owner is resolved once the target is open. */
interface FetchedFile {
  file: ConfigFile;
  /** Where it is in the manifest ("vm.files.0", "env.dev.vm.files.1"). */
  field: string;
  data: Uint8Array;
}

/** Pure: the manifest field of a config file of `sectionFiles(m, "vm", env)`. */
function fileField(m: Manifest, f: ConfigFile, env: Environment | undefined): string {
  const i = env ? (m.env[env]?.vm?.files ?? []).indexOf(f) : -1;
  return i >= 0 ? `env.${env}.vm.files.${i}` : `vm.files.${m.vm.files.indexOf(f)}`;
}

/** A config file's bytes: inline, or from the download cache, checked against its sha256 and size. */
async function configBytes(f: ConfigFile, field: string, o: InjectOptions): Promise<Uint8Array> {
  if (f.content !== undefined) return new TextEncoder().encode(f.content);
  const ref = { url: f.url as string, sha256: f.sha256 as string, size: f.size as number };
  try {
    return await fetchVerified(`config file ${f.path}`, ref, o.cacheDir);
  } catch (e) {
    const msg = (e as Error).message;
    const key = isHeroError(e, "input.sha256") ? "sha256" : "url";
    throw new HeroError(isHeroError(e, "input") ? e.code : "download", msg, {
      file: o.manifest,
      field: `${field}.${key}`,
    });
  }
}

/** The manifest's `[vm]` binaries and the environment's config files, downloaded and verified. */
async function readManifest(
  o: InjectOptions,
  env: Environment | undefined,
  say: Say,
): Promise<{ binaries: NonNullable<PlanInputs["binaries"]>; files: FetchedFile[] }> {
  const binaries: NonNullable<PlanInputs["binaries"]> = [];
  const files: FetchedFile[] = [];
  if (!o.manifest) return { binaries, files };
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
  for (const f of sectionFiles(m, "vm", env)) {
    const field = fileField(m, f, env);
    if (f.url) say(`fetching config file ${f.path}`);
    files.push({ file: f, field, data: await configBytes(f, field, o) });
  }
  return { binaries, files };
}

/** Most bytes of the image's /etc/passwd or /etc/group read to resolve owners. */
const MAX_ACCOUNT_FILE = 4 * 1024 * 1024;

/** The image's own account file ("" when absent, as the update engine reads a missing one). */
async function imageText(fmt: RootfsFormat, path: string): Promise<string> {
  const hit = await resolve(fmt, path);
  if (!hit) return "";
  if (hit.entry.type !== "file")
    throw new HeroError("image", `${path} in the image is not a regular file`, { file: path });
  // Refused before it is read: the image's file may be any size.
  return new TextDecoder().decode(await hit.entry.data(MAX_ACCOUNT_FILE));
}

/**
 * Config files with their owners resolved by name in the TARGET's
 * /etc/passwd and /etc/group (never the host's), the way the update engine
 * resolves them inside the VM (lib/config-files.ts idOf): both then agree
 * on what is in place. An owner the image lacks names the manifest field.
 */
async function planConfigFiles(
  fmt: RootfsFormat,
  files: readonly FetchedFile[],
  manifest: string | undefined,
): Promise<PlannedConfigFile[]> {
  if (!files.length) return [];
  const passwd = await imageText(fmt, "/etc/passwd");
  const group = await imageText(fmt, "/etc/group");
  return files.map(({ file: f, field, data }) => {
    const id = (key: "owner" | "group", table: string, account: string) => {
      try {
        return idOf(f[key], table, key);
      } catch {
        const what = key === "owner" ? "user" : "group";
        throw new HeroError(
          "owner",
          `config file ${f.path}: ${what} "${f[key]}" is not in the image's ${account}`,
          { file: manifest, field: `${field}.${key}` },
        );
      }
    };
    const uid = id("owner", passwd, "/etc/passwd");
    const gid = id("group", group, "/etc/group");
    return { path: f.path, data, mode: f.mode, uid, gid, field };
  });
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
    cur.gid === e.gid &&
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
  let env = o.env;
  if (o.vmConfig !== undefined) {
    const { config, errors } = parseVmConfig(o.vmConfig, "vm.toml");
    if (errors.length) throw errors[0] as HeroError;
    env ??= config.update?.env;
  }
  const { binaries, files } = await readManifest(o, env, say);
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
  const configFiles = await planConfigFiles(fmt, files, o.manifest);

  // 3. Plan (validates every path), then compare with what is there.
  const plan = buildPlan({
    heroInit,
    preinit,
    privateLibs,
    binaries,
    services,
    vmConfig: o.vmConfig ?? null,
    secrets: o.secrets,
    configFiles,
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
