/**
 * The update engine, the same code on nodes and in VMs. One run:
 *
 *  1. conditional GET of the manifest (304 → the last verified copy is used,
 *     no signature request);
 *  2. GET of its signature; verify the exact bytes with the trusted keys (an
 *     unknown key id → fetch keys.toml, signed by a trusted key, and rotate);
 *  3. refuse a lower version (rollback), a missing or past `expires`
 *     (freeze; the clock is fixed at the start of the run); remember the new
 *     trusted version and the verified bytes;
 *  4. resolve the section for this machine (role, environment, pins,
 *     rollout bucket) and diff it against the installed versions;
 *  5. free-space check, then download every changed binary into
 *     pkgs/<name>/<version>/ (capped at the manifest size, minimum rate,
 *     resume, backoff, sha256, fsync + rename);
 *  6. switch each `pkgs/<name>/current` link with one rename, restart only
 *     the affected services, run the health check;
 *  7. success → remove the other versions; failure → switch the links back,
 *     restart again, remove the new version.
 *
 * A kill -9 at any point leaves every install path resolving to a complete
 * binary, old or new: files appear by rename, links switch by rename.
 * hero-init itself is not restarted like a service: the caller's
 * `selfUpdate` hook takes it over (PID 1 re-execs; see guest/pid1/reexec.ts).
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import {
  affectedServices,
  type Binary,
  type Change,
  diffBinaries,
  type Environment,
  isArchive,
  type Manifest,
  parseManifest,
  resolveBinaries,
} from "../lib/manifest.ts";
import {
  keyIdHex,
  type PublicKey,
  parsePublicKey,
  SignatureError,
  signatureKeyId,
  verifyMessage,
} from "../lib/minisign.ts";
import { extractMember } from "../lib/tar.ts";
import { parseToml } from "../lib/toml.ts";
import {
  conditionalGet,
  type DownloadOptions,
  type DownloadStats,
  download,
  type FetchFn,
  fsyncPath,
} from "./download.ts";
import { checkKeySet, checkManifestPolicy, UpdateRefused } from "./policy.ts";

/** Where things live (absolute paths; tests point them into a temp dir). */
export interface UpdatePaths {
  /** The versioned store: <pkgs>/<name>/<version>/<name> and <pkgs>/<name>/current. */
  pkgs: string;
  /** Prefix for a binary's install path (`/usr/bin/<name>` or its `path`): "" on a real system. */
  root: string;
  /** State: last trusted version, validators, the last verified manifest. */
  stateDir: string;
  /** The trusted public keys, one minisign public key per line (comments allowed). */
  keysFile: string;
  /**
   * The configured key (`[update] key`): seeds `keysFile` when it does not
   * exist yet; a signed rotation replaces the file later, never the config.
   */
  seedKey?: string;
}

/** What to follow. */
export interface UpdateSource {
  manifestUrl: string;
  /** Default: `<manifestUrl>.minisig`. */
  signatureUrl?: string;
  /** Key rotation document; default: keys.toml beside the manifest (+ .minisig). */
  keysUrl?: string;
  role: "node" | "vm";
  env?: Environment;
  pins?: string[];
  machineId: string;
}

/** What the engine asks of its host (the supervisor in PID 1, systemd or zinit on a node). */
export interface UpdateHooks {
  /** Restart these services (the binaries they run changed). */
  restart(services: string[]): Promise<void>;
  /** After a restart: the services that are not healthy (empty = healthy). */
  health(services: string[]): Promise<string[]>;
  /** hero-init itself changed: switch to `path` (PID 1 re-execs; a CLI just reports). */
  selfUpdate?(path: string, change: Change): Promise<void>;
  log(msg: string): void;
}

/** Knobs, mostly for tests and benchmarks. */
export interface UpdateOptions {
  /** Only report what would change (`hero-init update --check`). */
  check?: boolean;
  fetch?: FetchFn;
  /** The run's fixed clock (default: now). */
  now?: Date;
  download?: Partial<Omit<DownloadOptions, "expectSize" | "sha256">>;
  /** Extra free bytes to keep beyond the downloads (default 16 MiB). */
  spareBytes?: number;
  /** Called at each step (tests kill the process here). */
  onStep?(step: string): void | Promise<void>;
}

/** The outcome of one run. */
export interface UpdateResult {
  outcome:
    | "unchanged"
    | "up-to-date"
    | "available"
    | "updated"
    | "rolled-back"
    | "refused"
    | "failed";
  manifestVersion?: number;
  changes: { name: string; from?: string; to: string; services: string[] }[];
  held: { name: string; version: string; reason: string }[];
  restarted: string[];
  error?: string;
  code?: string;
  requests: number;
  bytes: number;
}

/** An install whose links were switched but whose restart and cleanup may not have run. */
interface Pending {
  services: string[];
  binaries: { name: string; version: string; from?: string }[];
}

interface State {
  schema: 1;
  pending?: Pending;
  /** "name@version" that failed here (health, smoke test, resume): not tried again. */
  bad?: string[];
  /** Highest manifest version trusted so far (0: none). */
  version: number;
  keysVersion: number;
  etag?: string;
  lastModified?: string;
}

const STATE_FILE = "state.json";
const MANIFEST_COPY = "manifest.toml";

/** Writes a file atomically: temp in the same directory, fsync, rename, fsync the directory. */
export function atomicWrite(path: string, data: string | Uint8Array, mode = 0o644): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(3).toString("hex")}`;
  const fd = openSync(tmp, "wx", mode);
  try {
    writeFileSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncPath(dirname(path));
}

/** Points symlink `path` at `target` with one rename (never a moment without a link). */
export function switchLink(path: string, target: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(3).toString("hex")}`;
  symlinkSync(target, tmp);
  renameSync(tmp, path);
  fsyncPath(dirname(path));
}

/**
 * Remembers that a binary version failed on this machine (unhealthy, or a
 * hero-init that failed its smoke test or its resume), so the timer does not
 * retry it every interval; a later version in a newer manifest is tried.
 */
export function markBad(stateDir: string, name: string, version: string): void {
  const state = readState(stateDir);
  const bad = new Set(state.bad ?? []);
  bad.add(`${name}@${version}`);
  state.bad = [...bad].slice(-100);
  atomicWrite(join(stateDir, STATE_FILE), JSON.stringify(state), 0o600);
}

function writeState(paths: UpdatePaths, state: State): void {
  mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
  atomicWrite(join(paths.stateDir, STATE_FILE), JSON.stringify(state), 0o600);
}

function readState(dir: string): State {
  try {
    const s = JSON.parse(readFileSync(join(dir, STATE_FILE), "utf8")) as Partial<State>;
    if (s.schema === 1 && typeof s.version === "number") return { keysVersion: 0, ...s } as State;
  } catch {
    // none yet, or unreadable: start from zero trust (version 0)
  }
  return { schema: 1, version: 0, keysVersion: 0 };
}

/**
 * Whether the configured key (`seedKey`) is the trust root of this run: when
 * keysFile does not exist, or when it was written by an older hero-init
 * before any manifest was trusted (no state file yet), a seed that never
 * verified anything and must not outlive a corrected configuration.
 */
function seedsTrust(paths: UpdatePaths): boolean {
  if (!paths.seedKey) return false;
  return !existsSync(paths.keysFile) || !existsSync(join(paths.stateDir, STATE_FILE));
}

function parseSeedKey(key: string): PublicKey {
  try {
    return parsePublicKey(key.trim());
  } catch (e) {
    throw new UpdateRefused("keys", `the configured key: ${(e as Error).message}`);
  }
}

/** Reads the trusted keys file: one minisign public key (base64 line) per line. */
export function readTrustedKeys(file: string): PublicKey[] {
  const keys: PublicKey[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const t = line.trim();
    if (!t || t.startsWith("#") || t.startsWith("untrusted comment:")) continue;
    keys.push(parsePublicKey(t));
  }
  if (keys.length === 0) throw new UpdateRefused("keys", `${file}: no public key`);
  return keys;
}

/** The installed version of each binary: pkgs/<name>/current → <version>. */
export function installedVersions(pkgs: string): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[] = [];
  try {
    names = readdirSync(pkgs);
  } catch {
    return out;
  }
  for (const name of names) {
    try {
      const t = readlinkSync(join(pkgs, name, "current"));
      out.set(name, t.split("/").filter(Boolean)[0] ?? t);
    } catch {
      // no current link: not installed by the updater (nothing to compare)
    }
  }
  return out;
}

/** Runs one update. Never throws: every failure is in the result. */
export async function runUpdate(
  src: UpdateSource,
  paths: UpdatePaths,
  hooks: UpdateHooks,
  o: UpdateOptions = {},
): Promise<UpdateResult> {
  const now = o.now ?? new Date();
  const res: UpdateResult = {
    outcome: "failed",
    changes: [],
    held: [],
    restarted: [],
    requests: 0,
    bytes: 0,
  };
  const count = (s: DownloadStats) => {
    res.requests += s.requests;
    res.bytes += s.bytes;
  };
  const step = async (name: string) => {
    await o.onStep?.(name);
  };
  try {
    const state = readState(paths.stateDir);
    // Nothing is written before a manifest verifies: the configured key is
    // trusted in memory and kept in keysFile only once it has verified one.
    let seeding = seedsTrust(paths);
    let keys = seeding ? [parseSeedKey(paths.seedKey as string)] : readTrustedKeys(paths.keysFile);
    /** Keeps the seed key: it verified what is about to be trusted. */
    const keepSeed = () => {
      if (!seeding) return;
      mkdirSync(dirname(paths.keysFile), { recursive: true, mode: 0o700 });
      atomicWrite(paths.keysFile, `${paths.seedKey}\n`, 0o644);
      seeding = false;
    };
    let resumed = false;
    if (state.pending && !o.check) {
      hooks.log("finishing an update a previous run left half done");
      resumed = await finishPending(paths, state, hooks, res, step);
      if (!resumed) return res;
    }
    await step("poll");
    const polled = await conditionalGet(src.manifestUrl, {
      etag: existsSync(join(paths.stateDir, MANIFEST_COPY)) ? state.etag : undefined,
      lastModified: existsSync(join(paths.stateDir, MANIFEST_COPY))
        ? state.lastModified
        : undefined,
      fetch: o.fetch,
    });
    count(polled.stats);
    let manifestBytes: Uint8Array;
    let manifest: Manifest;
    if (polled.status === 304) {
      // Unchanged on the server: the copy verified last time is the truth.
      manifestBytes = new Uint8Array(readFileSync(join(paths.stateDir, MANIFEST_COPY)));
      const sig = readFileSync(join(paths.stateDir, `${MANIFEST_COPY}.minisig`), "utf8");
      verifyMessage(manifestBytes, sig, keys);
      manifest = parseManifest(new TextDecoder().decode(manifestBytes), src.manifestUrl);
      checkManifestPolicy(manifest, state.version, now);
      keepSeed();
    } else {
      manifestBytes = polled.body;
      await step("signature");
      const sigGet = await conditionalGet(src.signatureUrl ?? `${src.manifestUrl}.minisig`, {
        maxBytes: 4096,
        fetch: o.fetch,
      });
      count(sigGet.stats);
      if (sigGet.status !== 200) throw new UpdateRefused("bad-signature", "no signature");
      const sig = new TextDecoder().decode(sigGet.body);
      let claimed: string;
      try {
        claimed = signatureKeyId(sig);
      } catch (e) {
        throw new UpdateRefused("bad-signature", `manifest signature: ${(e as Error).message}`);
      }
      if (!keys.some((k) => keyIdHex(k.keyId) === claimed)) {
        keys = await rotateKeys(src, paths, state, keys, o, count, hooks);
        seeding = false; // the rotation, verified by the seed key, replaced it in keysFile
      }
      try {
        verifyMessage(manifestBytes, sig, keys);
      } catch (e) {
        const msg = (e as Error).message;
        throw new UpdateRefused(
          /not trusted/.test(msg) ? "untrusted-key" : "bad-signature",
          `manifest: ${msg}`,
        );
      }
      // Parse only what was verified; never a re-serialisation.
      try {
        manifest = parseManifest(new TextDecoder().decode(manifestBytes), src.manifestUrl);
      } catch (e) {
        throw new UpdateRefused("schema", String(e));
      }
      checkManifestPolicy(manifest, state.version, now);
      await step("trust");
      mkdirSync(paths.stateDir, { recursive: true, mode: 0o700 });
      keepSeed();
      atomicWrite(join(paths.stateDir, `${MANIFEST_COPY}.minisig`), sig, 0o600);
      atomicWrite(join(paths.stateDir, MANIFEST_COPY), manifestBytes, 0o600);
      state.version = manifest.version as number;
      state.etag = polled.etag;
      state.lastModified = polled.lastModified;
      writeState(paths, state);
    }
    res.manifestVersion = manifest.version;

    const installed = installedVersions(paths.pkgs);
    const { wanted, held } = resolveBinaries(manifest, {
      role: src.role,
      env: src.env,
      machineId: src.machineId,
      installed,
      pins: src.pins,
    });
    const bad = new Set(state.bad ?? []);
    const tryable = wanted.filter((b) => {
      if (!bad.has(`${b.name}@${b.version}`)) return true;
      held.push({
        name: b.name,
        version: installed.get(b.name) ?? "-",
        reason: `${b.version} failed on this machine before`,
      });
      return false;
    });
    res.held = held;
    const { changes } = diffBinaries(tryable, installed);
    res.changes = changes.map((c) => ({
      name: c.binary.name,
      from: c.from,
      to: c.binary.version,
      services: c.binary.services,
    }));
    if (changes.length === 0) {
      res.outcome = resumed ? "updated" : polled.status === 304 ? "unchanged" : "up-to-date";
      return res;
    }
    if (o.check) {
      res.outcome = "available";
      return res;
    }
    await install(changes, paths, state, hooks, o, res, count, step);
    return res;
  } catch (e) {
    res.outcome = e instanceof UpdateRefused ? "refused" : "failed";
    res.code = e instanceof UpdateRefused ? e.code : (e as { code?: string }).code;
    res.error =
      e instanceof SignatureError ? `manifest: ${e.message}` : ((e as Error).message ?? String(e));
    hooks.log(`update ${res.outcome}: ${res.error}`);
    return res;
  }
}

async function rotateKeys(
  src: UpdateSource,
  paths: UpdatePaths,
  state: State,
  keys: PublicKey[],
  o: UpdateOptions,
  count: (s: DownloadStats) => void,
  hooks: UpdateHooks,
): Promise<PublicKey[]> {
  const url = src.keysUrl ?? new URL("keys.toml", src.manifestUrl).href;
  let body: Uint8Array;
  let sig: string;
  try {
    const k = await conditionalGet(url, { maxBytes: 64 * 1024, fetch: o.fetch });
    count(k.stats);
    const s = await conditionalGet(`${url}.minisig`, { maxBytes: 4096, fetch: o.fetch });
    count(s.stats);
    if (k.status !== 200 || s.status !== 200) throw new Error("not modified?");
    body = k.body;
    sig = new TextDecoder().decode(s.body);
  } catch (e) {
    throw new UpdateRefused(
      "untrusted-key",
      `the manifest is signed by a key that is not trusted, and no key rotation could be fetched (${(e as Error).message})`,
    );
  }
  try {
    verifyMessage(body, sig, keys);
  } catch (e) {
    throw new UpdateRefused(
      "untrusted-key",
      `the manifest is signed by a key that is not trusted; keys.toml does not verify with a trusted key: ${(e as Error).message}`,
    );
  }
  const set = checkKeySet(parseToml(new TextDecoder().decode(body), url), state.keysVersion);
  const next = set.keys.map((k) => parsePublicKey(k));
  mkdirSync(dirname(paths.keysFile), { recursive: true, mode: 0o700 });
  atomicWrite(paths.keysFile, `${set.keys.join("\n")}\n`, 0o644);
  state.keysVersion = set.version;
  writeState(paths, state);
  hooks.log(`trusted keys rotated to key set version ${set.version} (${set.keys.length} keys)`);
  return next;
}

async function install(
  changes: Change[],
  paths: UpdatePaths,
  state: State,
  hooks: UpdateHooks,
  o: UpdateOptions,
  res: UpdateResult,
  count: (s: DownloadStats) => void,
  step: (s: string) => Promise<void>,
): Promise<void> {
  // Free space: everything must fit at once, plus a margin (archives count twice).
  mkdirSync(paths.pkgs, { recursive: true });
  const need =
    changes.reduce((n, c) => n + c.binary.size * (isArchive(c.binary) ? 2 : 1), 0) +
    (o.spareBytes ?? 16 * 1024 * 1024);
  const fs = statfsSync(paths.pkgs);
  const free = Number(fs.bavail) * Number(fs.bsize);
  if (free < need)
    throw Object.assign(
      new Error(`not enough space in ${paths.pkgs}: ${free} bytes free, ${need} needed`),
      { code: "space" },
    );

  // Download everything first: a failure here changes nothing that runs.
  for (const c of changes) {
    const b = c.binary;
    const dir = join(paths.pkgs, b.name, b.version);
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const file = join(dir, b.name);
    if (existsSync(file) && !lstatSync(file).isSymbolicLink()) {
      // A previous run fetched it (and renamed it in only after its sha256 matched).
      continue;
    }
    await step(`download ${b.name}`);
    hooks.log(`downloading ${b.name} ${b.version} (${b.size} bytes)`);
    const target = isArchive(b) ? join(dir, ".archive") : file;
    try {
      count(
        await download(b.url, target, {
          ...o.download,
          fetch: o.fetch ?? o.download?.fetch,
          expectSize: b.size,
          sha256: b.sha256,
        }),
      );
    } catch (e) {
      const s = (e as { stats?: DownloadStats }).stats;
      if (s) count(s);
      // A cut or slow transfer keeps its .part for a Range resume next run;
      // wrong bytes (hash, size, endless data) leave nothing behind.
      if (!(e as { retryable?: boolean }).retryable) rmSync(dir, { recursive: true, force: true });
      throw Object.assign(new Error(`${b.name} ${b.version}: ${(e as Error).message}`), {
        code: "download",
      });
    }
    if (isArchive(b)) {
      const member = b.archive_member ?? b.name;
      let data: Uint8Array;
      try {
        data = extractMember(readFileSync(target), member, `${b.name} ${b.version}`);
      } catch (e) {
        throw Object.assign(new Error((e as Error).message), { code: "download" });
      }
      atomicWrite(file, data, b.mode);
      rmSync(target, { force: true });
    } else {
      // download() created it with the default mode: the manifest's, before any link points at it.
      chmodSync(file, b.mode);
    }
  }

  // Journal first: a kill after the switch is finished by the next run
  // (restart, health check, cleanup), never forgotten.
  const self = changes.find((c) => c.binary.name === "hero-init");
  const others = changes.filter((c) => c !== self);
  const pending: Pending = {
    services: affectedServices(others),
    binaries: others.map((c) => ({ name: c.binary.name, version: c.binary.version, from: c.from })),
  };
  state.pending = pending;
  writeState(paths, state);
  await step("switch");
  for (const c of others) {
    switchLink(join(paths.pkgs, c.binary.name, "current"), c.binary.version);
    ensureInstallLink(paths, c.binary);
  }
  if (!(await finishPending(paths, state, hooks, res, step))) return;
  if (self) {
    const b = self.binary;
    const path = join(paths.pkgs, b.name, b.version, b.name);
    if (hooks.selfUpdate) {
      await step("self-update");
      try {
        await hooks.selfUpdate(path, self);
      } catch (e) {
        markBad(paths.stateDir, b.name, b.version);
        throw Object.assign(new Error((e as Error).message), { code: "self-update" });
      }
    } else {
      switchLink(join(paths.pkgs, b.name, "current"), b.version);
      ensureInstallLink(paths, b);
      removeOtherVersions(paths.pkgs, b.name, b.version);
    }
  }
  res.outcome = "updated";
  hooks.log(
    `updated: ${res.changes.map((c) => `${c.name} ${c.from ?? "-"} → ${c.to}`).join(", ")}`,
  );
}

/**
 * The second half of an install, also run at the start of the next run when
 * a kill interrupted it: restart the affected services, check their health,
 * then remove the old versions, or switch back and restart again. Returns
 * whether the update stands.
 */
async function finishPending(
  paths: UpdatePaths,
  state: State,
  hooks: UpdateHooks,
  res: UpdateResult,
  step: (s: string) => Promise<void>,
): Promise<boolean> {
  const p = state.pending;
  if (!p) return true;
  let ok = true;
  if (p.services.length) {
    await step("restart");
    hooks.log(`restarting ${p.services.join(", ")}`);
    await hooks.restart(p.services);
    res.restarted = p.services;
    const bad = await hooks.health(p.services);
    if (bad.length) {
      ok = false;
      hooks.log(`unhealthy after the update: ${bad.join(", ")}; rolling back`);
      for (const b of p.binaries) {
        if (b.from) switchLink(join(paths.pkgs, b.name, "current"), b.from);
        else rmSync(join(paths.pkgs, b.name, "current"), { force: true });
      }
      await hooks.restart(p.services);
      for (const b of p.binaries)
        if (b.from) rmSync(join(paths.pkgs, b.name, b.version), { recursive: true, force: true });
      res.outcome = "rolled-back";
      res.code = "health";
      res.error = `unhealthy after the update: ${bad.join(", ")}`;
      state.bad = [
        ...new Set([...(state.bad ?? []), ...p.binaries.map((b) => `${b.name}@${b.version}`)]),
      ];
    }
  }
  if (ok) {
    await step("cleanup");
    for (const b of p.binaries) removeOtherVersions(paths.pkgs, b.name, b.version);
  }
  state.pending = undefined;
  writeState(paths, state);
  return ok;
}

/** The install path (default /usr/bin/<name>) → pkgs/<name>/current/<name>, created once. */
function ensureInstallLink(paths: UpdatePaths, b: Binary): void {
  const link = `${paths.root}${b.path ?? `/usr/bin/${b.name}`}`;
  const target = join(paths.pkgs.slice(paths.root.length) || "/", b.name, "current", b.name);
  try {
    if (readlinkSync(link) === target) return;
  } catch {
    // absent or not a link
  }
  mkdirSync(dirname(link), { recursive: true });
  switchLink(link, target);
}

/** Keeps only the current version of a binary (after a successful update). */
export function removeOtherVersions(pkgs: string, name: string, keep: string): void {
  for (const v of readdirSync(join(pkgs, name))) {
    if (v === "current" || v === keep || v.includes(".tmp-")) continue;
    rmSync(join(pkgs, name, v), { recursive: true, force: true });
  }
}
