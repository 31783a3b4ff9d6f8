/**
 * Trust, the first part of an update run: from the manifest URL to a
 * verified manifest, or a HeroError "trust.*" saying why not.
 *
 *  1. conditional GET of the manifest (304 → the copy verified last time is
 *     verified again, no signature request);
 *  2. GET of its signature; verify the exact bytes with the trusted keys
 *     (an unknown key id → fetch keys.toml, signed by a trusted key, and
 *     rotate);
 *  3. policy (policy.ts): refuse a lower version (rollback), a missing or
 *     past `expires` (freeze, against the clock fixed at the start of the
 *     run); then remember the new trusted version and the verified bytes.
 *
 * Nothing is written before a manifest verifies: the configured key
 * (`seedKey`) is trusted in memory and kept in keysFile only once it has
 * verified one.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { atomicWrite } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import { type Manifest, parseManifest } from "../lib/manifest.ts";
import {
  keyIdHex,
  type PublicKey,
  parsePublicKey,
  signatureKeyId,
  verifyMessage,
} from "../lib/minisign.ts";
import { parseToml } from "../lib/toml.ts";
import { type ConditionalGetResult, conditionalGet } from "./download.ts";
import { checkKeySet, checkManifestPolicy } from "./policy.ts";
import {
  hasState,
  hasVerifiedCopy,
  keepVerifiedCopy,
  readVerifiedCopy,
  writeState,
} from "./state.ts";
import type { Run, UpdatePaths } from "./types.ts";

/** The keys a run trusts; `seeding`: they are the configured key, not yet kept in keysFile. */
export interface TrustRoot {
  keys: PublicKey[];
  seeding: boolean;
}

/** A manifest whose signature and policy passed; `status` 304: the kept copy, unchanged on the server. */
export interface Verified {
  manifest: Manifest;
  status: 200 | 304;
}

/** Signature sizes are small: a cap against a server that sends more. */
const SIG_MAX = 4096;
const KEYS_MAX = 64 * 1024;
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

/**
 * Whether the configured key (`seedKey`) is the trust root of this run: when
 * keysFile does not exist, or when it was written by an older hero-init
 * before any manifest was trusted (no state file yet), a seed that never
 * verified anything and must not outlive a corrected configuration.
 */
function seedsTrust(paths: UpdatePaths): boolean {
  if (!paths.seedKey) return false;
  return !existsSync(paths.keysFile) || !hasState(paths.stateDir);
}

/** The keys this run starts from: the configured seed, or keysFile. */
export function loadTrustRoot(paths: UpdatePaths): TrustRoot {
  if (!seedsTrust(paths)) return { keys: readTrustedKeys(paths.keysFile), seeding: false };
  try {
    return { keys: [parsePublicKey((paths.seedKey as string).trim())], seeding: true };
  } catch (e) {
    throw new HeroError("trust.keys", `the configured key: ${(e as Error).message}`);
  }
}

/** Reads the trusted keys file: one minisign public key (base64 line) per line. */
function readTrustedKeys(file: string): PublicKey[] {
  const keys: PublicKey[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const t = line.trim();
    if (!t || t.startsWith("#") || t.startsWith("untrusted comment:")) continue;
    keys.push(parsePublicKey(t));
  }
  if (keys.length === 0) throw new HeroError("trust.keys", `${file}: no public key`);
  return keys;
}

/** Keeps the seed key in keysFile: it verified what is about to be trusted. */
function keepSeed(paths: UpdatePaths, root: TrustRoot): void {
  if (!root.seeding) return;
  mkdirSync(dirname(paths.keysFile), { recursive: true, mode: 0o700 });
  atomicWrite(paths.keysFile, `${paths.seedKey}\n`, 0o644);
  root.seeding = false;
}

/**
 * Polls the manifest and returns it verified (see the module comment);
 * `root.keys` may change (a rotation). Throws a HeroError "trust.*" for
 * anything the trust rules refuse; other errors (network, a kept copy that
 * went missing) are thrown as they are.
 */
export async function verifiedManifest(run: Run, root: TrustRoot): Promise<Verified> {
  const { src, paths, state, o } = run;
  await run.step("poll");
  const kept = hasVerifiedCopy(paths.stateDir);
  const polled = await conditionalGet(src.manifestUrl, {
    etag: kept ? state.etag : undefined,
    lastModified: kept ? state.lastModified : undefined,
    fetch: o.fetch,
  });
  run.count(polled.stats);
  if (polled.status === 304) {
    // Unchanged on the server: the copy verified last time is the truth.
    const copy = readVerifiedCopy(paths.stateDir);
    verifyMessage(copy.bytes, copy.sig, root.keys);
    const manifest = parseManifest(decode(copy.bytes), src.manifestUrl);
    checkManifestPolicy(manifest, state.version, run.now);
    keepSeed(paths, root);
    return { manifest, status: 304 };
  }
  return { manifest: await verifyNew(run, root, polled), status: 200 };
}

/** A new manifest: its signature, a rotation when the key is unknown, the policy; then kept. */
async function verifyNew(
  run: Run,
  root: TrustRoot,
  polled: Extract<ConditionalGetResult, { status: 200 }>,
): Promise<Manifest> {
  const { src, paths, state, o } = run;
  const bytes = polled.body;
  await run.step("signature");
  const sigGet = await conditionalGet(src.signatureUrl ?? `${src.manifestUrl}.minisig`, {
    maxBytes: SIG_MAX,
    fetch: o.fetch,
  });
  run.count(sigGet.stats);
  if (sigGet.status !== 200) throw new HeroError("trust.bad-signature", "no signature");
  const sig = decode(sigGet.body);
  let claimed: string;
  try {
    claimed = signatureKeyId(sig);
  } catch (e) {
    throw new HeroError("trust.bad-signature", `manifest signature: ${(e as Error).message}`);
  }
  if (!root.keys.some((k) => keyIdHex(k.keyId) === claimed)) {
    root.keys = await rotateKeys(run, root.keys);
    root.seeding = false; // the rotation, verified by the seed key, replaced it in keysFile
  }
  try {
    verifyMessage(bytes, sig, root.keys);
  } catch (e) {
    const msg = (e as Error).message;
    throw new HeroError(
      /not trusted/.test(msg) ? "trust.untrusted-key" : "trust.bad-signature",
      `manifest: ${msg}`,
    );
  }
  // Parse only what was verified; never a re-serialisation.
  let manifest: Manifest;
  try {
    manifest = parseManifest(decode(bytes), src.manifestUrl);
  } catch (e) {
    throw new HeroError("trust.schema", String(e));
  }
  checkManifestPolicy(manifest, state.version, run.now);
  await run.step("trust");
  keepSeed(paths, root);
  keepVerifiedCopy(paths.stateDir, bytes, sig);
  state.version = manifest.version as number;
  state.etag = polled.etag;
  state.lastModified = polled.lastModified;
  writeState(paths.stateDir, state);
  return manifest;
}

/**
 * The manifest is signed by a key we do not trust: fetch keys.toml, accept
 * it only if a trusted key signed it and its version is newer, and make its
 * keys the trusted set (keysFile, state.keysVersion).
 */
async function rotateKeys(run: Run, keys: PublicKey[]): Promise<PublicKey[]> {
  const { src, paths, state, o } = run;
  const url = src.keysUrl ?? new URL("keys.toml", src.manifestUrl).href;
  let body: Uint8Array;
  let sig: string;
  try {
    const k = await conditionalGet(url, { maxBytes: KEYS_MAX, fetch: o.fetch });
    run.count(k.stats);
    const s = await conditionalGet(`${url}.minisig`, { maxBytes: SIG_MAX, fetch: o.fetch });
    run.count(s.stats);
    if (k.status !== 200 || s.status !== 200) throw new Error("not modified?");
    body = k.body;
    sig = decode(s.body);
  } catch (e) {
    throw new HeroError(
      "trust.untrusted-key",
      `the manifest is signed by a key that is not trusted, and no key rotation could be fetched (${(e as Error).message})`,
    );
  }
  try {
    verifyMessage(body, sig, keys);
  } catch (e) {
    throw new HeroError(
      "trust.untrusted-key",
      `the manifest is signed by a key that is not trusted; keys.toml does not verify with a trusted key: ${(e as Error).message}`,
    );
  }
  const set = checkKeySet(parseToml(decode(body), url), state.keysVersion);
  const next = set.keys.map((k) => parsePublicKey(k));
  mkdirSync(dirname(paths.keysFile), { recursive: true, mode: 0o700 });
  atomicWrite(paths.keysFile, `${set.keys.join("\n")}\n`, 0o644);
  state.keysVersion = set.version;
  writeState(paths.stateDir, state);
  run.hooks.log(`trusted keys rotated to key set version ${set.version} (${set.keys.length} keys)`);
  return next;
}
