/**
 * Pure trust decisions of the update engine, beside the signature check:
 * whether a verified manifest may replace the last trusted one (rollback),
 * whether it is still valid (freeze), and whether a key-rotation document
 * may replace the trusted key set. No I/O: the engine passes the clock it
 * fixed at the start of the run.
 */
import { HeroError } from "../lib/errors.ts";
import type { Manifest } from "../lib/manifest.ts";

/**
 * Checks a verified manifest against the last trusted version and the
 * run's clock. Returns "same" for an equal version (nothing new to trust),
 * "newer" otherwise; throws a HeroError "trust.*" for a lower version, a
 * missing version or expiry, or an expiry at or before `now`.
 */
export function checkManifestPolicy(m: Manifest, lastTrusted: number, now: Date): "same" | "newer" {
  if (m.version === undefined)
    throw new HeroError("trust.no-version", "the manifest has no version: refused for updates");
  if (m.expires === undefined)
    throw new HeroError("trust.no-expiry", "the manifest has no expires: refused for updates");
  if (m.expires.getTime() <= now.getTime())
    throw new HeroError(
      "trust.expired",
      `the manifest expired at ${m.expires.toISOString()} (now ${now.toISOString()}): refused (freeze attack or a stale server)`,
    );
  if (m.version < lastTrusted)
    throw new HeroError(
      "trust.rollback",
      `the manifest is version ${m.version}, older than the trusted version ${lastTrusted}: refused (rollback)`,
    );
  return m.version === lastTrusted ? "same" : "newer";
}

/** A key-rotation document (keys.toml): a new trusted key set, signed by a key of the old set. */
export interface KeySet {
  version: number;
  /** minisign public keys (the base64 line). */
  keys: string[];
}

/** Parses and checks keys.toml's content (already signature-verified by an old key). */
export function checkKeySet(raw: Record<string, unknown>, lastVersion: number): KeySet {
  const { version, keys } = raw;
  if (typeof version !== "number" || !Number.isInteger(version) || version < 1)
    throw new HeroError("trust.keys", "keys.toml: version must be a positive integer");
  if (
    !Array.isArray(keys) ||
    keys.length === 0 ||
    keys.some((k) => typeof k !== "string" || !/^RW[A-Za-z0-9+/]{54}$/.test(k))
  )
    throw new HeroError(
      "trust.keys",
      "keys.toml: keys must be a non-empty list of minisign public keys",
    );
  if (version <= lastVersion)
    throw new HeroError(
      "trust.keys",
      `keys.toml is version ${version}, not newer than the trusted key set ${lastVersion}: refused`,
    );
  return { version, keys: keys as string[] };
}
