/**
 * The one HTTP request set-up behind `conditionalGet()` and `download()`
 * (download.ts): identity encoding, redirects followed, TLS as fetch does
 * it, the caller's AbortSignal, a headers timeout and a deadline, the first
 * abort reason kept as the error, and a body read that refuses more bytes
 * than a cap. What differs between the two (status handling, where the
 * bytes go, resume) stays with them.
 */
import { HeroError } from "../lib/errors.ts";
import { isRetryableStatus, parseRetryAfter } from "./backoff.ts";

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

/**
 * A failed download or poll: code "download." + `code`, the message after
 * the URL; detail `url`, `retryable` (whether asking again could help),
 * `status` (the HTTP status, when the error is one), `retryAfterMs` (the
 * server's Retry-After, 429/503, for callers that poll), and `stats` (what
 * the attempts cost, set by download()).
 */
export function downloadError(
  code: DownloadErrorCode,
  message: string,
  url: string,
  retryable: boolean,
  status?: number,
  retryAfterMs?: number,
): HeroError {
  const detail = { url, retryable, status, retryAfterMs };
  return new HeroError(`download.${code}`, `${url}: ${message}`, {}, detail);
}

/** What a download or poll cost (for benchmarks and logs); a type, so it fits ErrorDetail.stats. */
export type DownloadStats = {
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
};

export const newStats = (): DownloadStats => ({
  requests: 0,
  bytes: 0,
  retries: 0,
  restarts: 0,
  resumedFrom: 0,
  ms: 0,
});

/** The fetch function used (injectable for tests and benchmarks). */
export type FetchFn = (url: string, init: RequestInit) => Promise<Response>;

/** A timer that aborts the request with `error()` when it fires. */
interface Timeout {
  ms: number;
  error: () => HeroError;
}

/** How to send one request (see {@link withRequest}). */
export interface RequestSetup {
  url: string;
  /** Extra request headers (conditional or range); Accept-Encoding is always identity. */
  headers: Record<string, string>;
  fetch?: FetchFn;
  signal?: AbortSignal;
  /** Counts the request and the body bytes. */
  stats: DownloadStats;
  /** Until the response headers arrive. */
  headersTimeout?: Timeout;
  /** Until the exchange ends, body included. */
  deadline?: Timeout;
}

/** One request in flight, as its user sees it. */
export interface Exchange {
  res: Response;
  /** Aborts the request; the first reason given is the error the body read throws. */
  abort(e: HeroError): void;
  /**
   * Streams the body into `sink`, counting the bytes, and aborts with
   * `tooLarge()` before a chunk would take the total over `cap`. Resolves
   * with the bytes read; a cut connection or an abort rejects (with the
   * abort's reason when there is one).
   */
  read(
    cap: number,
    sink: (chunk: Uint8Array) => void | Promise<void>,
    tooLarge: () => HeroError,
  ): Promise<number>;
  /** Drops the body unread (before an error, or a 304). */
  drop(): Promise<void>;
}

/** Pure: the headers of a conditional GET (If-None-Match / If-Modified-Since). */
export function conditionalHeaders(v: {
  etag?: string;
  lastModified?: string;
}): Record<string, string> {
  const h: Record<string, string> = {};
  if (v.etag) h["If-None-Match"] = v.etag;
  if (v.lastModified) h["If-Modified-Since"] = v.lastModified;
  return h;
}

/**
 * Pure: the headers of a resume from `offset` (none from 0). If-Range takes
 * a strong ETag, else Last-Modified: a weak ETag is not allowed there
 * (RFC 9110 §13.1.5), and without a validator the server could send a
 * range of other bytes.
 */
export function rangeHeaders(
  offset: number,
  v: { etag?: string; lastModified?: string } | undefined,
): Record<string, string> {
  if (offset <= 0) return {};
  const h: Record<string, string> = { Range: `bytes=${offset}-` };
  const validator = v?.etag && !v.etag.startsWith("W/") ? v.etag : v?.lastModified;
  if (validator) h["If-Range"] = validator;
  return h;
}

/** The error for an unexpected HTTP status: retryable for 408/429/5xx, with the server's Retry-After. */
export function httpStatusError(url: string, res: Response): HeroError {
  return downloadError(
    "http-status",
    `HTTP ${res.status}`,
    url,
    isRetryableStatus(res.status),
    res.status,
    parseRetryAfter(res.headers.get("retry-after"), Date.now()),
  );
}

/**
 * Sends one GET and hands the response to `use`; the timers and the
 * caller's signal are released when `use` settles, whatever happens. A
 * fetch that fails is a retryable "network" error, unless an abort gave a
 * reason first.
 */
export async function withRequest<T>(
  s: RequestSetup,
  use: (x: Exchange) => Promise<T>,
): Promise<T> {
  const ac = new AbortController();
  let why: HeroError | undefined;
  const abort = (e: HeroError) => {
    why ??= e;
    ac.abort(e);
  };
  const onCallerAbort = () => abort(downloadError("aborted", "aborted", s.url, false));
  s.signal?.addEventListener("abort", onCallerAbort);
  const arm = (t?: Timeout) => (t ? setTimeout(() => abort(t.error()), t.ms) : undefined);
  const headersTimer = arm(s.headersTimeout);
  const deadlineTimer = arm(s.deadline);
  try {
    let res: Response;
    try {
      s.stats.requests++;
      res = await (s.fetch ?? fetch)(s.url, {
        headers: { "Accept-Encoding": "identity", ...s.headers },
        signal: ac.signal,
        redirect: "follow",
      });
    } catch (e) {
      throw why ?? downloadError("network", (e as Error).message, s.url, true);
    }
    clearTimeout(headersTimer);
    const drop = async () => {
      await res.body?.cancel().catch(() => {});
    };
    const read: Exchange["read"] = async (cap, sink, tooLarge) => {
      if (!res.body) return 0;
      const reader = res.body.getReader();
      let n = 0;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          if (n + value.byteLength > cap) {
            abort(tooLarge());
            break;
          }
          await sink(value);
          n += value.byteLength;
          s.stats.bytes += value.byteLength;
        }
      } catch (e) {
        throw (
          why ?? downloadError("network", `connection lost: ${(e as Error).message}`, s.url, true)
        );
      } finally {
        reader.cancel().catch(() => {});
      }
      if (why) throw why;
      return n;
    };
    return await use({ res, abort, read, drop });
  } finally {
    clearTimeout(headersTimer);
    clearTimeout(deadlineTimer);
    s.signal?.removeEventListener("abort", onCallerAbort);
  }
}
