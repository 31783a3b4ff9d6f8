/**
 * Downloads for the update engine, safe against a hostile or broken server:
 * `download()` fetches one binary to `DEST.part` on the same filesystem,
 * capped at the size the signed manifest names, aborted below a minimum
 * rate, resumed with Range + If-Range, retried with jittered backoff
 * (Retry-After honoured), checked against the manifest's sha256, fsynced,
 * and only then renamed to DEST (and the directory fsynced): DEST is the old
 * file or the complete new one, never a partial one. `conditionalGet()`
 * polls the manifest and its signature with If-None-Match/If-Modified-Since.
 * Both count requests and bytes for the benchmarks.
 */
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, openSync, readFileSync, rmSync } from "node:fs";
import { open, rename, stat, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import {
  type BackoffPolicy,
  DEFAULT_BACKOFF,
  isRetryableStatus,
  parseRetryAfter,
  retryDelay,
} from "./backoff.ts";

/** What went wrong, as a string code (the message says it for people). */
export type DownloadErrorCode =
  | "too-large" // more bytes than the manifest's size (endless data)
  | "too-slow" // below the minimum rate over the window (slow retrieval)
  | "timeout" // no response headers in time, or the whole download took too long
  | "size-mismatch" // the server's length disagrees with the manifest
  | "hash-mismatch" // complete, but not the bytes the manifest names
  | "http-status" // an unexpected HTTP status
  | "network" // connection refused, reset or cut
  | "aborted" // the caller's AbortSignal
  | "io"; // the local filesystem

/** A failed download or poll; `retryable` says whether asking again could help. */
export class DownloadError extends Error {
  constructor(
    readonly code: DownloadErrorCode,
    message: string,
    readonly url: string,
    readonly retryable: boolean,
    /** The HTTP status, when the error is one. */
    readonly status?: number,
    /** The server's Retry-After in ms (429/503), for callers that poll. */
    readonly retryAfterMs?: number,
  ) {
    super(`${url}: ${message}`);
  }
  /** What the attempts cost before the error (set by download()). */
  stats?: DownloadStats;
}

/** What a download or poll cost (for benchmarks and logs). */
export interface DownloadStats {
  /** HTTP requests sent. */
  requests: number;
  /** Body bytes received from the network. */
  bytes: number;
  /** Retries after a failed attempt. */
  retries: number;
  /** Times a partial file had to be thrown away (server ignored Range, validator changed). */
  restarts: number;
  /** Bytes reused from an existing `.part` (last attempt). */
  resumedFrom: number;
  /** Wall time, ms. */
  ms: number;
}

/** The fetch function used (injectable for tests and benchmarks). */
export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

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
const newStats = (): DownloadStats => ({
  requests: 0,
  bytes: 0,
  retries: 0,
  restarts: 0,
  resumedFrom: 0,
  ms: 0,
});

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

/** fsyncs a file or directory by path. */
export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
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
 * rejects with a DownloadError (its `stats` set) otherwise, leaving `dest`
 * as it was. A `dest.part` (+ `dest.part.meta`) may remain for a resume.
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
    const err =
      e instanceof DownloadError ? e : new DownloadError("io", (e as Error).message, url, false);
    err.stats = stats;
    throw err;
  } finally {
    stats.ms = performance.now() - t0;
  }
}

async function run(url: string, dest: string, o: DownloadOptions, stats: DownloadStats) {
  const part = `${dest}.part`;
  const metaPath = `${part}.meta`;
  const want = o.sha256.toLowerCase();
  const f = o.fetch ?? ((u, i) => fetch(u, i));
  const sleep = o.sleep ?? defaultSleep;
  const maxRetries = o.maxRetries ?? 5;
  const deadline = o.totalTimeoutMs === undefined ? Infinity : Date.now() + o.totalTimeoutMs;
  const fail = (code: DownloadErrorCode, msg: string, retryable: boolean, status?: number) =>
    new DownloadError(code, msg, url, retryable, status);
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
      meta = await attemptOnce(url, part, metaPath, offset, meta, o, f, stats, deadline);
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
      if (!(e instanceof DownloadError)) {
        throw fail("io", (e as Error).message, false);
      }
      if (!e.retryable || attempt >= maxRetries) throw e;
      retryAfterMs = e.retryAfterMs;
      if (e.code === "hash-mismatch") stats.restarts++;
    }
    const delay = retryDelay(attempt, o.backoff ?? DEFAULT_BACKOFF, retryAfterMs, o.random);
    if (Date.now() + delay > deadline)
      throw fail("timeout", "deadline reached while retrying", false);
    attempt++;
    stats.retries++;
    await sleep(delay);
    meta = readMeta(metaPath);
  }
}

/** fsync the file, rename .part → dest, fsync the directory. */
async function finish(part: string, dest: string, metaPath: string): Promise<void> {
  fsyncPath(part);
  await rename(part, dest);
  fsyncPath(dirname(dest));
  rmSync(metaPath, { force: true });
}

/**
 * One request: resume from `offset` when possible, stream the body into the
 * .part with the size cap and the rate watchdog. Returns the .part's meta once
 * the file has exactly expectSize bytes; throws DownloadError otherwise.
 */
async function attemptOnce(
  url: string,
  part: string,
  metaPath: string,
  offset: number,
  meta: PartMeta | undefined,
  o: DownloadOptions,
  f: FetchFn,
  stats: DownloadStats,
  deadline: number,
): Promise<PartMeta> {
  const want = o.sha256.toLowerCase();
  const fail = (code: DownloadErrorCode, msg: string, retryable: boolean, status?: number) =>
    new DownloadError(code, msg, url, retryable, status);
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (offset > 0) {
    headers.Range = `bytes=${offset}-`;
    const validator = meta?.etag && !meta.etag.startsWith("W/") ? meta.etag : meta?.lastModified;
    if (validator) headers["If-Range"] = validator;
  }

  const ac = new AbortController();
  let why: DownloadError | undefined;
  const abort = (e: DownloadError) => {
    why ??= e;
    ac.abort(e);
  };
  const onCallerAbort = () => abort(fail("aborted", "aborted", false));
  o.signal?.addEventListener("abort", onCallerAbort);
  const headersTimer = setTimeout(
    () => abort(fail("timeout", `no response within ${o.headersTimeoutMs ?? 30_000} ms`, true)),
    o.headersTimeoutMs ?? 30_000,
  );
  const totalTimer =
    deadline === Infinity
      ? undefined
      : setTimeout(
          () => abort(fail("timeout", "deadline reached", false)),
          Math.max(0, deadline - Date.now()),
        );
  let watchdog: ReturnType<typeof setInterval> | undefined;
  try {
    let res: Response;
    try {
      stats.requests++;
      res = await f(url, { headers, signal: ac.signal, redirect: "follow" });
    } catch (e) {
      throw why ?? fail("network", (e as Error).message, true);
    }
    clearTimeout(headersTimer);

    let start: number;
    if (res.status === 206 && offset > 0) {
      const cr = contentRange(res.headers.get("content-range"));
      if (cr?.total !== undefined && cr.total !== o.expectSize) {
        throw fail(
          "size-mismatch",
          `server size ${cr.total}, manifest size ${o.expectSize}`,
          false,
        );
      }
      if (!cr || cr.start !== offset || cr.end >= o.expectSize) {
        // Not the range we asked for: start over.
        await res.body?.cancel().catch(() => {});
        stats.restarts++;
        rmSync(part, { force: true });
        throw fail(
          "http-status",
          `unexpected Content-Range ${res.headers.get("content-range")}`,
          true,
          206,
        );
      }
      start = offset;
    } else if (res.status === 200) {
      if (offset > 0) stats.restarts++; // Range ignored or validator changed
      start = 0;
    } else {
      await res.body?.cancel().catch(() => {});
      if (res.status === 416 && offset > 0) {
        // Our .part no longer fits the resource: start over.
        rmSync(part, { force: true });
        stats.restarts++;
        throw fail("http-status", "416 on resume; restarting from 0", true, 416);
      }
      const e = new DownloadError(
        "http-status",
        `HTTP ${res.status}`,
        url,
        isRetryableStatus(res.status),
        res.status,
        parseRetryAfter(res.headers.get("retry-after"), Date.now()),
      );
      throw e;
    }

    const remaining = o.expectSize - start;
    const cl = res.headers.get("content-length");
    if (cl !== null && /^\d+$/.test(cl) && Number(cl) !== remaining) {
      await res.body?.cancel().catch(() => {});
      const code = Number(cl) > remaining ? "too-large" : "size-mismatch";
      throw fail(
        code,
        `Content-Length ${cl}, expected ${remaining} (manifest size ${o.expectSize})`,
        false,
      );
    }

    const m: PartMeta = {
      sha256: want,
      etag: res.headers.get("etag") ?? undefined,
      lastModified: res.headers.get("last-modified") ?? undefined,
    };
    if (start === 0 || m.etag !== meta?.etag) await writeFile(metaPath, JSON.stringify(m));

    const fh = await open(part, start === 0 ? "w" : "r+");
    let written = start;
    try {
      await fh.truncate(start);
      const rate = o.minRate ?? DEFAULT_MIN_RATE;
      const tick = Math.max(10, Math.floor(rate.windowMs / 4));
      const marks: number[] = [];
      let received = 0;
      watchdog = setInterval(() => {
        marks.push(received);
        if (marks.length > 4) marks.shift();
        const first = marks[0] ?? 0;
        if (marks.length === 4 && received - first < (rate.bytesPerSec * tick * 3) / 1000) {
          const r = Math.round(((received - first) * 1000) / (tick * 3));
          abort(fail("too-slow", `${r} B/s, below the minimum ${rate.bytesPerSec} B/s`, true));
        }
      }, tick);
      if (!res.body) throw fail("network", "response without a body", true);
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (written + value.byteLength > o.expectSize) {
            abort(fail("too-large", `more than the manifest's ${o.expectSize} bytes`, false));
            break;
          }
          await fh.write(value, 0, value.byteLength, written);
          written += value.byteLength;
          received += value.byteLength;
          stats.bytes += value.byteLength;
        }
      } catch (e) {
        throw why ?? fail("network", `connection lost: ${(e as Error).message}`, true);
      } finally {
        reader.cancel().catch(() => {});
      }
    } finally {
      await fh.close();
    }
    if (why) {
      // too-large: what we have cannot be trusted to be a prefix.
      if (why.code === "too-large") {
        rmSync(part, { force: true });
        rmSync(metaPath, { force: true });
      }
      throw why;
    }
    if (written !== o.expectSize) {
      throw fail("network", `body ended at ${written} of ${o.expectSize} bytes`, true);
    }
    return m;
  } finally {
    clearTimeout(headersTimer);
    if (totalTimer) clearTimeout(totalTimer);
    if (watchdog) clearInterval(watchdog);
    o.signal?.removeEventListener("abort", onCallerAbort);
  }
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
  const f = o.fetch ?? ((u, i) => fetch(u, i));
  const headers: Record<string, string> = { "Accept-Encoding": "identity" };
  if (o.etag) headers["If-None-Match"] = o.etag;
  if (o.lastModified) headers["If-Modified-Since"] = o.lastModified;
  const ac = new AbortController();
  let why: DownloadError | undefined;
  const abort = (e: DownloadError) => {
    why ??= e;
    ac.abort(e);
  };
  const onCallerAbort = () => abort(new DownloadError("aborted", "aborted", url, false));
  o.signal?.addEventListener("abort", onCallerAbort);
  const timer = setTimeout(
    () =>
      abort(
        new DownloadError("timeout", `no answer within ${o.timeoutMs ?? 30_000} ms`, url, true),
      ),
    o.timeoutMs ?? 30_000,
  );
  try {
    let res: Response;
    try {
      stats.requests++;
      res = await f(url, { headers, signal: ac.signal, redirect: "follow" });
    } catch (e) {
      throw why ?? new DownloadError("network", (e as Error).message, url, true);
    }
    if (res.status === 304) {
      await res.body?.cancel().catch(() => {});
      return { status: 304, stats };
    }
    if (res.status !== 200) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError(
        "http-status",
        `HTTP ${res.status}`,
        url,
        isRetryableStatus(res.status),
        res.status,
        parseRetryAfter(res.headers.get("retry-after"), Date.now()),
      );
    }
    const cl = res.headers.get("content-length");
    if (cl !== null && Number(cl) > max) {
      await res.body?.cancel().catch(() => {});
      throw new DownloadError(
        "too-large",
        `Content-Length ${cl} over the cap of ${max} bytes`,
        url,
        false,
      );
    }
    const chunks: Uint8Array[] = [];
    let n = 0;
    if (res.body) {
      const reader = res.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          n += value.byteLength;
          stats.bytes += value.byteLength;
          if (n > max) throw new DownloadError("too-large", `more than ${max} bytes`, url, false);
          chunks.push(value);
        }
      } catch (e) {
        if (e instanceof DownloadError) throw e;
        throw (
          why ?? new DownloadError("network", `connection lost: ${(e as Error).message}`, url, true)
        );
      } finally {
        reader.cancel().catch(() => {});
      }
    }
    const body = new Uint8Array(n);
    let at = 0;
    for (const c of chunks) {
      body.set(c, at);
      at += c.byteLength;
    }
    return {
      status: 200,
      body,
      etag: res.headers.get("etag") ?? undefined,
      lastModified: res.headers.get("last-modified") ?? undefined,
      stats,
    };
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener("abort", onCallerAbort);
    stats.ms = performance.now() - t0;
  }
}
