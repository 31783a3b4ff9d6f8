/**
 * Bounded decompression (gzip, zstd) for everything hero-init unpacks from
 * outside: an initramfs base image, OCI layers, release archives. A few MB
 * of compressed zeros can unpack to gigabytes, so every unpack has a hard
 * limit on its output: zlib stops as soon as the output passes it
 * (`maxOutputLength`), the memory spent is at most the limit, and the error
 * names the file and the limit. The limit is `HERO_MAX_UNPACKED` (bytes, or
 * with a K/M/G suffix), 512 MiB by default. Pure apart from reading that
 * variable in {@link maxUnpacked}.
 */
import { gunzipSync, zstdDecompressSync } from "node:zlib";
import { HeroError } from "./errors.ts";

/** The environment variable that raises (or lowers) the limit. */
export const MAX_UNPACKED_ENV = "HERO_MAX_UNPACKED";
/** The default limit: 512 MiB. */
export const DEFAULT_MAX_UNPACKED = 512 * 1024 ** 2;
/** The largest limit one in-memory unpack can have (the largest Buffer is smaller still on some hosts). */
const MAX_LIMIT = 2 ** 53 - 1;

/** A compression format hero-init unpacks. */
export type Compression = "gzip" | "zstd";

/** Pure: the compression of `b` from its magic bytes, or null (plain data). */
export function compressionOf(b: Uint8Array): Compression | null {
  if (b[0] === 0x1f && b[1] === 0x8b) return "gzip";
  if (b[0] === 0x28 && b[1] === 0xb5 && b[2] === 0x2f && b[3] === 0xfd) return "zstd";
  return null;
}

const UNITS: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** Pure: "1048576", "512M", "2G", "64KiB", "1.5g" → bytes (powers of 1024); null if it is not a size. */
export function parseSize(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  if (!m) return null;
  const n = Math.floor(Number(m[1]) * (UNITS[(m[2] ?? "").toLowerCase()] ?? 1));
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** Pure: bytes as "512 MiB", "1.5 GiB", "300 bytes". */
export function formatSize(n: number): string {
  for (const [unit, size] of [
    ["TiB", 1024 ** 4],
    ["GiB", 1024 ** 3],
    ["MiB", 1024 ** 2],
    ["KiB", 1024],
  ] as const)
    if (n >= size) return `${Number((n / size).toFixed(1))} ${unit}`;
  return `${n} bytes`;
}

/** The unpack limit: `$HERO_MAX_UNPACKED` or {@link DEFAULT_MAX_UNPACKED}; a bad value is an input error. */
export function maxUnpacked(env: Record<string, string | undefined> = process.env): number {
  const raw = env[MAX_UNPACKED_ENV];
  if (raw === undefined || raw === "") return DEFAULT_MAX_UNPACKED;
  const n = parseSize(raw);
  if (n === null || n > MAX_LIMIT)
    throw new HeroError(
      "config",
      `${JSON.stringify(raw)} is not a size (bytes, or a number with K, M or G: 512M, 2G)`,
      { field: MAX_UNPACKED_ENV },
    );
  return n;
}

/** What one unpack is and how far it may go. */
export interface InflateOptions {
  /** The most bytes the output may have. */
  max: number;
  /** What is unpacked, for the error: "initramfs base image", "layer sha256:…". */
  what: string;
  /** The file it came from, for the error. */
  file?: string;
  /** The whole limit when `max` is what is left of it (OCI layers share one), for the error. */
  limit?: number;
}

function tooLarge(o: InflateOptions): HeroError {
  const limit = o.limit ?? o.max;
  return new HeroError(
    "too-large",
    `${o.what} unpacks to more than ${formatSize(o.max)}${
      limit !== o.max ? `, what is left of the ${formatSize(limit)} limit` : ", the limit"
    } for unpacking: refused (a decompression bomb?). A bigger image needs ${MAX_UNPACKED_ENV}=SIZE (e.g. 2G)`,
    { file: o.file },
  );
}

/**
 * Pure: decompresses gzip (concatenated members too) or zstd (concatenated
 * frames too). Output past `o.max` bytes stops the decompressor at once and
 * throws HeroError "too-large" naming the file, what it is and the limit;
 * corrupt input throws HeroError "corrupt".
 */
export function inflate(data: Uint8Array, kind: Compression, o: InflateOptions): Uint8Array {
  let out: Buffer;
  try {
    const opts = { maxOutputLength: Math.max(1, Math.min(o.max, MAX_LIMIT)) };
    out = kind === "gzip" ? gunzipSync(data, opts) : zstdDecompressSync(data, opts);
  } catch (e) {
    const err = e as { code?: string; message?: string };
    if (err.code === "ERR_BUFFER_TOO_LARGE") throw tooLarge(o);
    throw new HeroError("corrupt", `${o.what}: corrupt ${kind} data (${err.message ?? e})`, {
      file: o.file,
    });
  }
  if (out.length > o.max) throw tooLarge(o); // max 0: zlib's smallest limit is 1
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}
