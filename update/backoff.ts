/**
 * Retry timing for downloads and polls (pure): capped exponential backoff
 * with full jitter (a uniformly random delay in [0, min(cap, base·2^n)), so a
 * fleet that failed together does not retry together), and the server's
 * Retry-After (429, 503) honoured as a lower bound up to a ceiling.
 */

/** How long to wait between attempts. */
export interface BackoffPolicy {
  /** Upper bound of the first retry's delay (ms). */
  baseMs: number;
  /** Cap of the exponential bound (ms). */
  capMs: number;
  /** The longest Retry-After we obey (ms); a longer one is clipped to this. */
  maxRetryAfterMs: number;
}

/** Defaults: 1 s base, 60 s cap, Retry-After obeyed up to 10 min. */
export const DEFAULT_BACKOFF: BackoffPolicy = {
  baseMs: 1000,
  capMs: 60_000,
  maxRetryAfterMs: 600_000,
};

/**
 * The full-jitter delay before retry number `attempt` (0 = first retry):
 * `random() · min(capMs, baseMs · 2^attempt)`, an integer in [0, bound).
 */
export function backoffDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: () => number = Math.random,
): number {
  const n = Math.max(0, Math.min(Math.floor(attempt), 52));
  const bound = Math.min(policy.capMs, policy.baseMs * 2 ** n);
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON);
  return Math.floor(r * Math.max(0, bound));
}

/**
 * Parses a Retry-After header value: delay-seconds (`120`) or an HTTP-date
 * (relative to `nowMs`). Returns ms (≥ 0), or undefined when absent or
 * malformed.
 */
export function parseRetryAfter(
  value: string | null | undefined,
  nowMs: number,
): number | undefined {
  if (value == null) return undefined;
  const v = value.trim();
  if (/^\d{1,10}$/.test(v)) return Number(v) * 1000;
  // An HTTP-date always names a weekday and a GMT time; Date.parse alone is too lenient.
  if (!/^[A-Za-z]{3},? .*\d{2}:\d{2}:\d{2} GMT$/.test(v)) return undefined;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return undefined;
  return Math.max(0, t - nowMs);
}

/**
 * The delay before retry number `attempt`: the jittered backoff, but never
 * less than the server's Retry-After (when given), and never more than
 * `maxRetryAfterMs` because of it.
 */
export function retryDelay(
  attempt: number,
  policy: BackoffPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const jitter = backoffDelay(attempt, policy, random);
  if (retryAfterMs === undefined) return jitter;
  return Math.max(jitter, Math.min(retryAfterMs, policy.maxRetryAfterMs));
}

/**
 * Whether an HTTP status is worth retrying: timeouts, too-many-requests and
 * server-side failures (408, 425, 429, 500, 502, 503, 504). Anything else
 * (404, 403, 410…) will not change by asking again.
 */
export function isRetryableStatus(status: number): boolean {
  return [408, 425, 429, 500, 502, 503, 504].includes(status);
}
