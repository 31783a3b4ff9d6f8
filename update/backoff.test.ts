import { describe, expect, test } from "bun:test";
import {
  backoffDelay,
  DEFAULT_BACKOFF,
  isRetryableStatus,
  parseRetryAfter,
  retryDelay,
} from "./backoff.ts";

const P = { baseMs: 100, capMs: 1000, maxRetryAfterMs: 5000 };

describe("backoffDelay", () => {
  test("the bound doubles per attempt up to the cap", () => {
    const almostOne = () => 0.999999;
    expect(backoffDelay(0, P, almostOne)).toBe(99);
    expect(backoffDelay(1, P, almostOne)).toBe(199);
    expect(backoffDelay(3, P, almostOne)).toBe(799);
    expect(backoffDelay(4, P, almostOne)).toBe(999);
    expect(backoffDelay(1000, P, almostOne)).toBe(999);
  });

  test("full jitter: random 0 gives 0, random 1 stays below the bound", () => {
    expect(backoffDelay(5, P, () => 0)).toBe(0);
    expect(backoffDelay(5, P, () => 1)).toBeLessThan(1000);
    expect(backoffDelay(-3, P, () => 0.5)).toBe(50);
  });

  test("delays are spread over the whole range", () => {
    const ds = Array.from({ length: 2000 }, () => backoffDelay(10, P));
    expect(Math.min(...ds)).toBeLessThan(100);
    expect(Math.max(...ds)).toBeGreaterThan(900);
    for (const d of ds) expect(d >= 0 && d < 1000 && Number.isInteger(d)).toBe(true);
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2026-01-01T00:00:00Z");
  test("delay-seconds", () => {
    expect(parseRetryAfter("120", now)).toBe(120_000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
  });
  test("HTTP-date relative to now, never negative", () => {
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Wed, 31 Dec 2025 23:00:00 GMT", now)).toBe(0);
  });
  test("absent or malformed → undefined", () => {
    for (const v of [null, undefined, "", "-5", "1.5", "soon", "2026-01-01", "1e3"]) {
      expect(parseRetryAfter(v, now)).toBeUndefined();
    }
  });
});

describe("retryDelay", () => {
  test("Retry-After is a lower bound", () => {
    expect(retryDelay(0, P, 3000, () => 0)).toBe(3000);
    expect(retryDelay(4, P, 10, () => 0.5)).toBe(500);
  });
  test("Retry-After is clipped to maxRetryAfterMs", () => {
    expect(retryDelay(0, P, 86_400_000, () => 0)).toBe(5000);
  });
  test("without Retry-After it is the jittered backoff", () => {
    expect(retryDelay(2, P, undefined, () => 0.5)).toBe(200);
    expect(DEFAULT_BACKOFF.capMs).toBeGreaterThan(DEFAULT_BACKOFF.baseMs);
  });
});

test("isRetryableStatus", () => {
  for (const s of [408, 429, 500, 502, 503, 504]) expect(isRetryableStatus(s)).toBe(true);
  for (const s of [200, 206, 304, 400, 403, 404, 410, 416, 501]) {
    expect(isRetryableStatus(s)).toBe(false);
  }
});
