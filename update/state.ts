/**
 * The update engine's state on disk, and nothing else: what survives
 * between runs and across a kill -9.
 *
 *  - `<stateDir>/state.json`: the highest trusted manifest version and key
 *    set version, the validators of the last 200, the install pending
 *    confirmation (links switched, restart or cleanup not yet done), and
 *    the versions that failed here;
 *  - `<stateDir>/manifest.toml` (+ `.minisig`): the last verified manifest,
 *    byte for byte, re-verified on a 304;
 *  - `<stateDir>/machine-id`: this machine's id when /etc/machine-id has none;
 *  - `<pkgs>/<name>/current`: the installed version of each binary.
 *
 * Every write is atomic and fsynced (lib/atomic-file.ts).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { atomicWrite } from "../lib/atomic-file.ts";
import { randomHex } from "../lib/random.ts";

/** An install whose links were switched but whose restart and cleanup may not have run. */
export interface Pending {
  services: string[];
  binaries: { name: string; version: string; from?: string }[];
}

/** state.json. */
export interface State {
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
const MACHINE_ID = "machine-id";
/** How many failed versions are remembered (the oldest are forgotten). */
const BAD_LIMIT = 100;

/** Reads state.json; none yet, or unreadable, is zero trust (version 0). */
export function readState(dir: string): State {
  try {
    const s = JSON.parse(readFileSync(join(dir, STATE_FILE), "utf8")) as Partial<State>;
    if (s.schema === 1 && typeof s.version === "number") return { keysVersion: 0, ...s } as State;
  } catch {
    // none yet, or unreadable: start from zero trust (version 0)
  }
  return { schema: 1, version: 0, keysVersion: 0 };
}

/** Whether state.json exists (a manifest was trusted here, or a key set adopted). */
export function hasState(dir: string): boolean {
  return existsSync(join(dir, STATE_FILE));
}

/** Writes state.json (0600; the directory 0700 when it is created). */
export function writeState(dir: string, state: State): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  atomicWrite(join(dir, STATE_FILE), JSON.stringify(state), 0o600);
}

/** Pure: the bad list with `entries` added (each once, the newest last, at most BAD_LIMIT). */
export function withBad(bad: readonly string[] | undefined, entries: readonly string[]): string[] {
  return [...new Set([...(bad ?? []), ...entries])].slice(-BAD_LIMIT);
}

/**
 * Remembers that a binary version failed on this machine (unhealthy, or a
 * hero-init that failed its smoke test or its resume), so the timer does not
 * retry it every interval; a later version in a newer manifest is tried.
 */
export function markBad(stateDir: string, name: string, version: string): void {
  const state = readState(stateDir);
  state.bad = withBad(state.bad, [`${name}@${version}`]);
  writeState(stateDir, state);
}

/** Whether a verified manifest copy is kept (only then are its validators worth sending). */
export function hasVerifiedCopy(dir: string): boolean {
  return existsSync(join(dir, MANIFEST_COPY));
}

/** The last verified manifest, byte for byte, and its signature (to verify again). */
export function readVerifiedCopy(dir: string): { bytes: Uint8Array; sig: string } {
  return {
    bytes: new Uint8Array(readFileSync(join(dir, MANIFEST_COPY))),
    sig: readFileSync(join(dir, `${MANIFEST_COPY}.minisig`), "utf8"),
  };
}

/** Keeps a verified manifest: the signature first, so a kept manifest always has one. */
export function keepVerifiedCopy(dir: string, bytes: Uint8Array, sig: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  atomicWrite(join(dir, `${MANIFEST_COPY}.minisig`), sig, 0o600);
  atomicWrite(join(dir, MANIFEST_COPY), bytes, 0o600);
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

/**
 * This machine's id (rollout buckets need a stable one): /etc/machine-id,
 * else the one kept in `stateDir`; undefined when neither has one.
 */
export function readMachineId(stateDir: string, etc = "/etc/machine-id"): string | undefined {
  for (const p of [etc, join(stateDir, MACHINE_ID)]) {
    try {
      const id = readFileSync(p, "utf8").trim();
      if (id) return id;
    } catch {
      // try the next
    }
  }
  return undefined;
}

/** Keeps a new machine id in `stateDir` (not over one already kept). */
export function keepMachineId(stateDir: string, id: string): void {
  const p = join(stateDir, MACHINE_ID);
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  if (!existsSync(p)) atomicWrite(p, `${id}\n`, 0o600);
}

/**
 * /etc/machine-id, else an id kept in `stateDir`, else a new random one,
 * kept (rollout buckets need a stable id). A failure to keep it is reported
 * through `warn` and the id is still returned.
 */
export function machineId(stateDir: string, warn: (message: string) => void = () => {}): string {
  const have = readMachineId(stateDir);
  if (have) return have;
  const id = randomHex(16);
  try {
    keepMachineId(stateDir, id);
  } catch (e) {
    warn(`cannot keep a machine id: ${(e as Error).message}`);
  }
  return id;
}
