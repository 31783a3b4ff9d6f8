/**
 * Downloads for the update engine, safe against a hostile or broken server:
 * `download()` fetches one binary to `DEST.part` on the same filesystem,
 * capped at the size the signed manifest names, aborted below a minimum
 * rate, resumed with Range + If-Range, retried with jittered backoff
 * (Retry-After honoured), checked against the manifest's sha256, fsynced,
 * and only then renamed to DEST (and the directory fsynced): DEST is the old
 * file or the complete new one, never a partial one. `conditionalGet()`
 * polls the manifest and its signature with If-None-Match/If-Modified-Since.
 * Both send their request through update/request.ts and count requests and
 * bytes for the benchmarks.
 */
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { open, stat, writeFile } from "node:fs/promises";
import { renameDurable } from "../lib/atomic-file.ts";
import { type HeroError, isHeroError } from "../lib/errors.ts";
import { type BackoffPolicy, DEFAULT_BACKOFF, retryDelay } from "./backoff.ts";
import {
  conditionalHeaders,
  type DownloadErrorCode,
  type DownloadStats,
  downloadError,
  type Exchange,
  type FetchFn,
  httpStatusError,
  newStats,
  rangeHeaders,
  withRequest,
} from "./request.ts";

/** Options of {@link download}. */
export interface DownloadOptions {
  /** Exact size in bytes, from the signed manifest: the cap and the expected length. */
  expectSize: number;
  /** Expected sha256, hex, from the signed manifest. */
  sha256: string;
  /** Abort an attempt that receives fewer than `bytesPerSec` over `windowMs`. Default 4 KiB/s over 30 s. */
  minRate?: { bytesPerSec: number; windowMs: number };
  /** Time to wait for response headers (ms). Default 30 s. */
  headersTimeoutMs?: number;
  /** Deadline for the whole call, retries included (ms). Default none. */
  totalTimeoutMs?: number;
  /** Retries after the first attempt. Default 5. */
  maxRetries?: number;
  /** Backoff between retries. Default DEFAULT_BACKOFF. */
  backoff?: BackoffPolicy;
  fetch?: FetchFn;
  /** Waits between retries (injectable so tests need not wait). */
  sleep?: (ms: number) => Promise<void>;
  /** Random source for the jitter. */
  random?: () => number;
  /** Cancels the download (the .part stays for a later resume). */
  signal?: AbortSignal;
}

/** What a `.part` was started from: a resume is only valid against the same validator and hash. */
interface PartMeta {
  sha256: string;
  etag?: string;
  lastModified?: string;
}

const DEFAULT_MIN_RATE = { bytesPerSec: 4096, windowMs: 30_000 };
const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
function readMeta(path: string): PartMeta | undefined {
  try {
    const m = JSON.parse(readFileSync(path, "utf8")) as PartMeta;
    return typeof m.sha256 === "string" ? m : undefined;
  } catch {
    return undefined;
  }
}

async function sizeOf(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** sha256 of a file, streamed. */
async function hashFile(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of Bun.file(path).stream()) h.update(chunk);
  return h.digest("hex");
}

/** Parses `bytes START-END/TOTAL`. */
function contentRange(v: string | null): { start: number; end: number; total?: number } | null {
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v ?? "");
  if (!m) return null;
  return {
    start: Number(m[1]),
    end: Number(m[2]),
    total: m[3] === "*" ? undefined : Number(m[3]),
  };
}

/**
 * Downloads `url` to `dest` (see the module comment). Resolves with the
 * stats once `dest` holds exactly `expectSize` bytes with the given sha256;
 * rejects with a HeroError "download.*" (detail.stats set) otherwise,
 * leaving `dest` as it was. A `dest.part` (+ `dest.part.meta`) may remain
 * for a resume.
 */
export async function download(
  url: string,
  dest: string,
  o: DownloadOptions,
): Promise<DownloadStats> {
  const stats = newStats();
  const t0 = performance.now();
  try {
    await run(url, dest, o, stats);
    return stats;
  } catch (e) {
    const err = isHeroError(e, "download")
      ? e
      : downloadError("io", (e as Error).message, url, false);
    err.detail.stats = stats;
    throw err;
  } finally {
    stats.ms = performance.now() - t0;
  }
}

/** What every attempt of one download shares. */
interface Job {
  url: string;
  part: string;
  metaPath: string;
  /** The manifest's sha256, lower case. */
  want: string;
  o: DownloadOptions;
  stats: DownloadStats;
  /** Date.now() past which the whole download fails (Infinity: none). */
  deadline: number;
  fail(code: DownloadErrorCode, msg: string, retryable: boolean, status?: number): HeroError;
}

/** The retry loop: resume or restart, one attempt, verify, back off. */
async function run(url: string, dest: string, o: DownloadOptions, stats: DownloadStats) {
  const part = `${dest}.part`;
  const j: Job = {
    url,
    part,
    metaPath: `${part}.meta`,
    want: o.sha256.toLowerCase(),
    o,
    stats,
    deadline: o.totalTimeoutMs === undefined ? Infinity : Date.now() + o.totalTimeoutMs,
    fail: (code, msg, retryable, status) => downloadError(code, msg, url, retryable, status),
  };
  const { want, metaPath, fail } = j;
  const sleep = o.sleep ?? defaultSleep;
  const maxRetries = o.maxRetries ?? 5;
  if (!Number.isSafeInteger(o.expectSize) || o.expectSize < 0) {
    throw fail("size-mismatch", `bad expected size ${o.expectSize}`, false);
  }
  const discard = () => {
    rmSync(part, { force: true });
    rmSync(metaPath, { force: true });
  };

  // A .part is only resumable if it was started for these very bytes.
  let meta = readMeta(metaPath);
  if (!meta || meta.sha256 !== want || (await sizeOf(part)) > o.expectSize) {
    discard();
    meta = undefined;
  }

  let attempt = 0;
  let resumedThisRound = false;
  for (;;) {
    if (o.signal?.aborted) throw fail("aborted", "aborted", false);
    let offset = meta ? await sizeOf(part) : 0;
    if (offset === o.expectSize) {
      // Complete from an earlier run: check it without asking the server.
      if ((await hashFile(part)) === want) return finish(part, dest, metaPath);
      discard();
      meta = undefined;
      offset = 0;
      stats.restarts++;
    }
    stats.resumedFrom = offset;
    resumedThisRound = offset > 0;
    let retryAfterMs: number | undefined;
    try {
      meta = await attemptOnce(j, offset, meta);
      // Complete: verify.
      const got = await hashFile(part);
      if (got !== want) {
        discard();
        meta = undefined;
        if (!resumedThisRound) {
          throw fail("hash-mismatch", `sha256 is ${got}, the manifest says ${want}`, false);
        }
        // A resumed file may have mixed two versions: one more try from zero.
        throw fail("hash-mismatch", "sha256 mismatch after a resume; restarting from 0", true);
      }
      return finish(part, dest, metaPath);
    } catch (e) {
      if (!isHeroError(e, "download")) {
        throw fail("io", (e as Error).message, false);
      }
      if (!e.detail.retryable || attempt >= maxRetries) throw e;
      retryAfterMs = e.detail.retryAfterMs;
      if (e.code === "download.hash-mismatch") stats.restarts++;
    }
    const delay = retryDelay(attempt, o.backoff ?? DEFAULT_BACKOFF, retryAfterMs, o.random);
    if (Date.now() + delay > j.deadline)
      throw fail("timeout", "deadline reached while retrying", false);
    attempt++;
    stats.retries++;
    await sleep(delay);
    meta = readMeta(metaPath);
  }
}

/** The complete, verified .part becomes dest (fsync, rename, fsync the directory). */
function finish(part: string, dest: string, metaPath: string): void {
  renameDurable(part, dest);
  rmSync(metaPath, { force: true });
}

/**
 * One request: resume from `offset` when possible, stream the body into the
 * .part with the size cap and the rate watchdog. Returns the .part's meta once
 * the file has exactly expectSize bytes; throws "download.*" otherwise.
 */
async function attemptOnce(j: Job, offset: number, meta: PartMeta | undefined): Promise<PartMeta> {
  const { o, fail } = j;
  const headersMs = o.headersTimeoutMs ?? 30_000;
  return withRequest(
    {
      url: j.url,
      headers: rangeHeaders(offset, meta),
      fetch: o.fetch,
      signal: o.signal,
      stats: j.stats,
      headersTimeout: {
        ms: headersMs,
        error: () => fail("timeout", `no response within ${headersMs} ms`, true),
      },
      deadline:
        j.deadline === Infinity
          ? undefined
          : {
              ms: Math.max(0, j.deadline - Date.now()),
              error: () => fail("timeout", "deadline reached", false),
            },
    },
    async (x) => {
      const start = await bodyStart(j, x, offset);
      const remaining = o.expectSize - start;
      const cl = x.res.headers.get("content-length");
      if (cl !== null && /^\d+$/.test(cl) && Number(cl) !== remaining) {
        await x.drop();
        const code = Number(cl) > remaining ? "too-large" : "size-mismatch";
        throw fail(
          code,
          `Content-Length ${cl}, expected ${remaining} (manifest size ${o.expectSize})`,
          false,
        );
      }
      const m: PartMeta = {
        sha256: j.want,
        etag: x.res.headers.get("etag") ?? undefined,
        lastModified: x.res.headers.get("last-modified") ?? undefined,
      };
      if (start === 0 || m.etag !== meta?.etag) await writeFile(j.metaPath, JSON.stringify(m));
      const written = start + (await receive(j, x, start));
      if (written !== o.expectSize) {
        throw fail("network", `body ended at ${written} of ${o.expectSize} bytes`, true);
      }
      return m;
    },
  );
}

/**
 * Where the body starts in the file, from the status: 206 with the range
 * asked for → `offset`; 200 → 0 (Range ignored or the validator changed);
 * a 206 for another range or a 416 → the .part is dropped and the error is
 * retryable (the next attempt starts over); any other status is an error.
 */
async function bodyStart(j: Job, x: Exchange, offset: number): Promise<number> {
  const { res } = x;
  const { fail, o, stats } = j;
  if (res.status === 206 && offset > 0) {
    const cr = contentRange(res.headers.get("content-range"));
    if (cr?.total !== undefined && cr.total !== o.expectSize) {
      throw fail("size-mismatch", `server size ${cr.total}, manifest size ${o.expectSize}`, false);
    }
    if (!cr || cr.start !== offset || cr.end >= o.expectSize) {
      // Not the range we asked for: start over.
      await x.drop();
      stats.restarts++;
      rmSync(j.part, { force: true });
      throw fail(
        "http-status",
        `unexpected Content-Range ${res.headers.get("content-range")}`,
        true,
        206,
      );
    }
    return offset;
  }
  if (res.status === 200) {
    if (offset > 0) stats.restarts++; // Range ignored or validator changed
    return 0;
  }
  await x.drop();
  if (res.status === 416 && offset > 0) {
    // Our .part no longer fits the resource: start over.
    rmSync(j.part, { force: true });
    stats.restarts++;
    throw fail("http-status", "416 on resume; restarting from 0", true, 416);
  }
  throw httpStatusError(j.url, res);
}

/**
 * Streams the body into the .part from `start`, under the size cap and the
 * rate watchdog; returns the bytes written. Too many bytes cannot be trusted
 * to be a prefix: the .part and its meta are removed.
 */
async function receive(j: Job, x: Exchange, start: number): Promise<number> {
  const { o, fail } = j;
  const fh = await open(j.part, start === 0 ? "w" : "r+");
  let received = 0;
  const watchdog = rateWatchdog(o.minRate ?? DEFAULT_MIN_RATE, () => received, x.abort, fail);
  try {
    try {
      await fh.truncate(start);
      if (!x.res.body) throw fail("network", "response without a body", true);
      return await x.read(
        o.expectSize - start,
        async (chunk) => {
          await fh.write(chunk, 0, chunk.byteLength, start + received);
          received += chunk.byteLength;
        },
        () => fail("too-large", `more than the manifest's ${o.expectSize} bytes`, false),
      );
    } finally {
      clearInterval(watchdog);
      await fh.close();
    }
  } catch (e) {
    if (isHeroError(e, "download.too-large")) {
      rmSync(j.part, { force: true });
      rmSync(j.metaPath, { force: true });
    }
    throw e;
  }
}

/**
 * Aborts with "too-slow" when fewer than `bytesPerSec` arrive over the last
 * three of four ticks of `windowMs / 4` (at least 10 ms each).
 */
function rateWatchdog(
  rate: { bytesPerSec: number; windowMs: number },
  received: () => number,
  abort: (e: HeroError) => void,
  fail: Job["fail"],
): ReturnType<typeof setInterval> {
  const tick = Math.max(10, Math.floor(rate.windowMs / 4));
  const marks: number[] = [];
  return setInterval(() => {
    const now = received();
    marks.push(now);
    if (marks.length > 4) marks.shift();
    const first = marks[0] ?? 0;
    if (marks.length === 4 && now - first < (rate.bytesPerSec * tick * 3) / 1000) {
      const r = Math.round(((now - first) * 1000) / (tick * 3));
      abort(fail("too-slow", `${r} B/s, below the minimum ${rate.bytesPerSec} B/s`, true));
    }
  }, tick);
}

/** Options of {@link conditionalGet}. */
export interface ConditionalGetOptions {
  /** The ETag from the last 200, if any. */
  etag?: string;
  /** The Last-Modified from the last 200, if any. */
  lastModified?: string;
  /** Body cap (bytes). Default 1 MiB. */
  maxBytes?: number;
  /** Deadline for the request, body included (ms). Default 30 s. */
  timeoutMs?: number;
  fetch?: FetchFn;
  signal?: AbortSignal;
}

/** The result of a poll. */
export type ConditionalGetResult =
  | { status: 304; stats: DownloadStats }
  | {
      status: 200;
      /** The exact bytes received (verify these, never a re-serialisation). */
      body: Uint8Array;
      etag?: string;
      lastModified?: string;
      stats: DownloadStats;
    };

/**
 * One conditional GET (If-None-Match / If-Modified-Since) for a small
 * document such as the manifest or its signature: 304, or 200 with the
 * body (capped at maxBytes). No retries: the caller polls on a timer (a
 * 429/503 error carries `retryAfterMs`).
 */
export async function conditionalGet(
  url: string,
  o: ConditionalGetOptions = {},
): Promise<ConditionalGetResult> {
  const stats = newStats();
  const t0 = performance.now();
  const max = o.maxBytes ?? 1 << 20;
  const ms = o.timeoutMs ?? 30_000;
  const setup = {
    url,
    headers: conditionalHeaders(o),
    fetch: o.fetch,
    signal: o.signal,
    stats,
    deadline: {
      ms,
      error: () => downloadError("timeout", `no answer within ${ms} ms`, url, true),
    },
  };
  try {
    return await withRequest(setup, async (x): Promise<ConditionalGetResult> => {
      if (x.res.status === 304) {
        await x.drop();
        return { status: 304, stats };
      }
      if (x.res.status !== 200) {
        await x.drop();
        throw httpStatusError(url, x.res);
      }
      const cl = x.res.headers.get("content-length");
      if (cl !== null && Number(cl) > max) {
        await x.drop();
        throw downloadError(
          "too-large",
          `Content-Length ${cl} over the cap of ${max} bytes`,
          url,
          false,
        );
      }
      const chunks: Uint8Array[] = [];
      const n = await x.read(
        max,
        (c) => {
          chunks.push(c);
        },
        () => downloadError("too-large", `more than ${max} bytes`, url, false),
      );
      return {
        status: 200,
        body: concat(chunks, n),
        etag: x.res.headers.get("etag") ?? undefined,
        lastModified: x.res.headers.get("last-modified") ?? undefined,
        stats,
      };
    });
  } finally {
    stats.ms = performance.now() - t0;
  }
}

/** Joins chunks of `n` bytes in all into one array. */
function concat(chunks: Uint8Array[], n: number): Uint8Array {
  const body = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    body.set(c, at);
    at += c.byteLength;
  }
  return body;
}
