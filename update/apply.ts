/**
 * Apply, the second part of an update run: from a verified manifest to the
 * new binaries running, or the old ones back.
 *
 *  1. plan: resolve the section for this machine (role, environment, pins,
 *     rollout bucket), drop versions that failed here before, diff against
 *     the installed versions;
 *  2. free-space check, then download every changed binary into
 *     pkgs/<name>/<version>/ (capped at the manifest size, minimum rate,
 *     resume, backoff, sha256, fsync + rename: download.ts);
 *  3. journal the install as pending (state.ts), switch each
 *     `pkgs/<name>/current` link with one rename;
 *  4. finish: restart only the affected services, run the health check;
 *     success → remove the other versions; failure → switch the links back,
 *     restart again, remove the new version. A run killed after the switch
 *     is finished by the next one.
 *
 * hero-init itself is not restarted like a service: the caller's
 * `selfUpdate` hook takes it over (PID 1 re-execs; see guest/pid1/reexec.ts).
 */
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statfsSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { atomicWrite, switchLink } from "../lib/atomic-file.ts";
import { HeroError, isHeroError } from "../lib/errors.ts";
import {
  affectedServices,
  type Binary,
  type Change,
  diffBinaries,
  isArchive,
  type Manifest,
  type Resolution,
  resolveBinaries,
} from "../lib/manifest.ts";
import { extractMember } from "../lib/tar.ts";
import { download } from "./download.ts";
import type { DownloadStats } from "./request.ts";
import { markBad, type Pending, withBad, writeState } from "./state.ts";
import type { Run, UpdatePaths, UpdateSource } from "./types.ts";

/** Free bytes kept beyond the downloads unless `spareBytes` says otherwise. */
const DEFAULT_SPARE = 16 * 1024 * 1024;

/**
 * Pure: what this machine should change. Versions in `bad` (failed here
 * before) are held at the installed version with the reason, like pins and
 * rollout buckets.
 */
export function planUpdate(
  manifest: Manifest,
  src: Pick<UpdateSource, "role" | "env" | "machineId" | "pins">,
  installed: ReadonlyMap<string, string>,
  bad: readonly string[] = [],
): { changes: Change[]; held: Resolution["held"] } {
  const { wanted, held } = resolveBinaries(manifest, {
    role: src.role,
    env: src.env,
    machineId: src.machineId,
    installed,
    pins: src.pins,
  });
  const failed = new Set(bad);
  const tryable = wanted.filter((b) => {
    if (!failed.has(`${b.name}@${b.version}`)) return true;
    held.push({
      name: b.name,
      version: installed.get(b.name) ?? "-",
      reason: `${b.version} failed on this machine before`,
    });
    return false;
  });
  return { changes: diffBinaries(tryable, installed).changes, held };
}

/** Pure: the free bytes an install needs (archives count twice: the archive and the binary). */
export function spaceNeeded(changes: readonly Change[], spare = DEFAULT_SPARE): number {
  return changes.reduce((n, c) => n + c.binary.size * (isArchive(c.binary) ? 2 : 1), spare);
}

/** Installs `changes` (steps 2–4 of the module comment); the outcome is in run.res. */
export async function install(changes: Change[], run: Run): Promise<void> {
  const { paths, state, res } = run;
  // Free space: everything must fit at once, plus a margin.
  mkdirSync(paths.pkgs, { recursive: true });
  const need = spaceNeeded(changes, run.o.spareBytes);
  const fs = statfsSync(paths.pkgs);
  const free = Number(fs.bavail) * Number(fs.bsize);
  if (free < need)
    throw Object.assign(
      new Error(`not enough space in ${paths.pkgs}: ${free} bytes free, ${need} needed`),
      { code: "space" },
    );

  // Download everything first: a failure here changes nothing that runs.
  for (const c of changes) await fetchArtifact(c.binary, run);

  // Journal first: a kill after the switch is finished by the next run
  // (restart, health check, cleanup), never forgotten.
  const self = changes.find((c) => c.binary.name === "hero-init");
  const others = changes.filter((c) => c !== self);
  const pending: Pending = {
    services: affectedServices(others),
    binaries: others.map((c) => ({ name: c.binary.name, version: c.binary.version, from: c.from })),
  };
  state.pending = pending;
  writeState(paths.stateDir, state);
  await run.step("switch");
  for (const c of others) {
    switchLink(join(paths.pkgs, c.binary.name, "current"), c.binary.version);
    ensureInstallLink(paths, c.binary);
  }
  if (!(await finishPending(run))) return;
  if (self) await switchSelf(self, run);
  res.outcome = "updated";
  run.hooks.log(
    `updated: ${res.changes.map((c) => `${c.name} ${c.from ?? "-"} → ${c.to}`).join(", ")}`,
  );
}

/**
 * Downloads one binary into pkgs/<name>/<version>/<name> (unpacked from its
 * archive, with the manifest's mode) unless a previous run already did.
 */
async function fetchArtifact(b: Binary, run: Run): Promise<void> {
  const { paths, o } = run;
  const dir = join(paths.pkgs, b.name, b.version);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const file = join(dir, b.name);
  if (existsSync(file) && !lstatSync(file).isSymbolicLink()) {
    // A previous run fetched it (and renamed it in only after its sha256 matched).
    return;
  }
  await run.step(`download ${b.name}`);
  run.hooks.log(`downloading ${b.name} ${b.version} (${b.size} bytes)`);
  const target = isArchive(b) ? join(dir, ".archive") : file;
  try {
    run.count(
      await download(b.url, target, {
        ...o.download,
        fetch: o.fetch ?? o.download?.fetch,
        expectSize: b.size,
        sha256: b.sha256,
      }),
    );
  } catch (e) {
    const d = isHeroError(e, "download") ? e.detail : {};
    if (d.stats) run.count(d.stats as DownloadStats);
    // A cut or slow transfer keeps its .part for a Range resume next run;
    // wrong bytes (hash, size, endless data) leave nothing behind.
    if (!d.retryable) rmSync(dir, { recursive: true, force: true });
    throw new HeroError("apply.download", `${b.name} ${b.version}: ${(e as Error).message}`);
  }
  if (!isArchive(b)) {
    // download() created it with the default mode: the manifest's, before any link points at it.
    chmodSync(file, b.mode);
    return;
  }
  let data: Uint8Array;
  try {
    data = extractMember(
      readFileSync(target),
      b.archive_member ?? b.name,
      `${b.name} ${b.version}`,
    );
  } catch (e) {
    throw new HeroError("apply.download", (e as Error).message);
  }
  atomicWrite(file, data, b.mode);
  rmSync(target, { force: true });
}

/** A new hero-init: handed to the `selfUpdate` hook, or (no hook) switched like any binary. */
async function switchSelf(self: Change, run: Run): Promise<void> {
  const { paths, hooks } = run;
  const b = self.binary;
  const path = join(paths.pkgs, b.name, b.version, b.name);
  if (!hooks.selfUpdate) {
    switchLink(join(paths.pkgs, b.name, "current"), b.version);
    ensureInstallLink(paths, b);
    removeOtherVersions(paths.pkgs, b.name, b.version);
    return;
  }
  await run.step("self-update");
  try {
    await hooks.selfUpdate(path, self);
  } catch (e) {
    markBad(paths.stateDir, b.name, b.version);
    throw new HeroError("apply.self-update", (e as Error).message);
  }
}

/**
 * The second half of an install, also run at the start of the next run when
 * a kill interrupted it: restart the affected services, check their health,
 * then remove the old versions, or switch back and restart again. Returns
 * whether the update stands.
 */
export async function finishPending(run: Run): Promise<boolean> {
  const { paths, state, hooks, res } = run;
  const p = state.pending;
  if (!p) return true;
  let ok = true;
  if (p.services.length) {
    await run.step("restart");
    hooks.log(`restarting ${p.services.join(", ")}`);
    await hooks.restart(p.services);
    res.restarted = p.services;
    const bad = await hooks.health(p.services);
    if (bad.length) {
      ok = false;
      await rollBack(p, bad, run);
    }
  }
  if (ok) {
    await run.step("cleanup");
    for (const b of p.binaries) removeOtherVersions(paths.pkgs, b.name, b.version);
  }
  state.pending = undefined;
  writeState(paths.stateDir, state);
  return ok;
}

/** Unhealthy after the switch: links back, restart again, the new versions removed and marked bad. */
async function rollBack(p: Pending, unhealthy: string[], run: Run): Promise<void> {
  const { paths, state, hooks, res } = run;
  hooks.log(`unhealthy after the update: ${unhealthy.join(", ")}; rolling back`);
  for (const b of p.binaries) {
    if (b.from) switchLink(join(paths.pkgs, b.name, "current"), b.from);
    else rmSync(join(paths.pkgs, b.name, "current"), { force: true });
  }
  await hooks.restart(p.services);
  for (const b of p.binaries)
    if (b.from) rmSync(join(paths.pkgs, b.name, b.version), { recursive: true, force: true });
  res.outcome = "rolled-back";
  res.code = "health";
  res.error = `unhealthy after the update: ${unhealthy.join(", ")}`;
  state.bad = withBad(
    state.bad,
    p.binaries.map((b) => `${b.name}@${b.version}`),
  );
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
