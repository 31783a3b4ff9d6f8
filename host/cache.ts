/**
 * The host's artifact cache: every `[vm]` binary is downloaded once into a
 * sha256-addressed store, verified against the manifest's sha256 and size
 * (the download is cut off past the announced size), and a tar.gz release
 * archive is unpacked to its binary. A half-downloaded file never gets a
 * sha256 name: it is written to a temp name and renamed once verified.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { atomicWrite } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import { type Binary, isArchive } from "../lib/manifest.ts";
import { extractMember } from "../lib/tar.ts";

/** Default cache directory. */
export function defaultCacheDir(): string {
  return (
    process.env.HERO_CACHE_DIR ??
    join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "hero-init")
  );
}

async function download(
  url: string,
  maxBytes: number,
  progress?: (done: number, total: number) => void,
): Promise<Uint8Array> {
  if (url.startsWith("file://")) {
    const data = new Uint8Array(readFileSync(new URL(url)));
    if (data.length > maxBytes)
      throw new HeroError(
        "size",
        `${url} is ${data.length} bytes, more than the manifest's ${maxBytes}`,
      );
    return data;
  }
  const res = await fetch(url);
  if (!res.ok || !res.body) throw new HeroError("download", `GET ${url}: HTTP ${res.status}`);
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body) {
    total += chunk.length;
    if (total > maxBytes)
      throw new HeroError(
        "size",
        `${url} sends more than the manifest's ${maxBytes} bytes: aborted`,
      );
    chunks.push(chunk);
    progress?.(total, maxBytes);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * Returns the verified bytes a manifest entry names by URL, sha256 and size
 * (a `[vm]` binary, a config file), from the sha256-addressed store or
 * downloaded into it; `what` names the entry in errors.
 */
export async function fetchVerified(
  what: string,
  ref: { url: string; sha256: string; size: number },
  cacheDir = defaultCacheDir(),
  progress?: (done: number, total: number) => void,
): Promise<Uint8Array> {
  const store = join(cacheDir, "sha256");
  mkdirSync(store, { recursive: true });
  const file = join(store, ref.sha256);
  let data: Uint8Array;
  if (existsSync(file)) {
    data = new Uint8Array(readFileSync(file));
  } else {
    data = await download(ref.url, ref.size, progress);
    const got = createHash("sha256").update(data).digest("hex");
    if (got !== ref.sha256 || data.length !== ref.size) {
      throw new HeroError(
        "sha256",
        `${what}: ${ref.url} has sha256 ${got} and ${data.length} bytes; the manifest says ${ref.sha256} and ${ref.size}`,
      );
    }
    atomicWrite(file, data);
  }
  const got = createHash("sha256").update(data).digest("hex");
  if (got !== ref.sha256) {
    rmSync(file, { force: true });
    throw new HeroError(
      "sha256",
      `cached ${what} was corrupted (sha256 ${got}); removed, run again`,
    );
  }
  return data;
}

/** Returns the verified bytes of a manifest binary (the unpacked binary for an archive). */
export async function fetchBinary(
  b: Binary,
  cacheDir = defaultCacheDir(),
  progress?: (done: number, total: number) => void,
): Promise<Uint8Array> {
  const data = await fetchVerified(`${b.name} ${b.version}`, b, cacheDir, progress);
  return isArchive(b)
    ? extractMember(data, b.archive_member ?? b.name, `${b.name} ${b.version}`)
    : data;
}
