import { describe, expect, test } from "bun:test";
import { type ErrorDetail, isHeroError, shortCode } from "../lib/errors.ts";
import {
  conditionalHeaders,
  downloadError,
  httpStatusError,
  newStats,
  rangeHeaders,
  withRequest,
} from "./request.ts";

/** A download error as its bare code and detail (and that it is one). */
function fields(e: unknown): ErrorDetail & { code: string } {
  expect(isHeroError(e, "download")).toBe(true);
  return isHeroError(e) ? { ...e.detail, code: shortCode(e.code) } : { code: "" };
}

describe("request headers (pure)", () => {
  test("conditional GET: If-None-Match and If-Modified-Since from what the last 200 gave", () => {
    expect(conditionalHeaders({})).toEqual({});
    expect(
      conditionalHeaders({ etag: '"a"', lastModified: "Tue, 01 Jul 2025 00:00:00 GMT" }),
    ).toEqual({
      "If-None-Match": '"a"',
      "If-Modified-Since": "Tue, 01 Jul 2025 00:00:00 GMT",
    });
  });

  test("resume: Range from the offset; If-Range a strong ETag, else Last-Modified, never a weak ETag", () => {
    expect(rangeHeaders(0, { etag: '"a"' })).toEqual({});
    expect(rangeHeaders(10, { etag: '"a"', lastModified: "LM" })).toEqual({
      Range: "bytes=10-",
      "If-Range": '"a"',
    });
    expect(rangeHeaders(10, { etag: 'W/"a"', lastModified: "LM" })).toEqual({
      Range: "bytes=10-",
      "If-Range": "LM",
    });
    expect(rangeHeaders(10, { etag: 'W/"a"' })).toEqual({ Range: "bytes=10-" });
    expect(rangeHeaders(10, undefined)).toEqual({ Range: "bytes=10-" });
  });

  test("a status error is retryable for 503 with Retry-After, not for 404", () => {
    const e = httpStatusError(
      "u",
      new Response("", { status: 503, headers: { "Retry-After": "3" } }),
    );
    expect(fields(e)).toMatchObject({
      code: "http-status",
      status: 503,
      retryable: true,
      retryAfterMs: 3000,
    });
    expect(fields(httpStatusError("u", new Response("", { status: 404 }))).retryable).toBe(false);
  });
});

describe("withRequest", () => {
  const body = (...chunks: number[]) =>
    new Response(
      new ReadableStream({
        start(c) {
          for (const n of chunks) c.enqueue(new Uint8Array(n));
          c.close();
        },
      }),
    );

  test("sends identity encoding and the extra headers, counts the request and the body bytes", async () => {
    const stats = newStats();
    let sent: Headers | undefined;
    const got: number[] = [];
    const n = await withRequest(
      {
        url: "http://x/a",
        headers: { Range: "bytes=5-" },
        stats,
        fetch: async (_u, init) => {
          sent = new Headers(init.headers);
          expect(init.redirect).toBe("follow");
          return body(3, 4);
        },
      },
      (x) =>
        x.read(
          100,
          (c) => void got.push(c.byteLength),
          () => downloadError("too-large", "", "u", false),
        ),
    );
    expect(n).toBe(7);
    expect(got).toEqual([3, 4]);
    expect(sent?.get("accept-encoding")).toBe("identity");
    expect(sent?.get("range")).toBe("bytes=5-");
    expect(stats).toMatchObject({ requests: 1, bytes: 7 });
  });

  test("a chunk that would pass the cap is refused with the caller's error, and not counted", async () => {
    const stats = newStats();
    const e = await withRequest(
      { url: "u", headers: {}, stats, fetch: async () => body(6, 6) },
      (x) =>
        x.read(
          10,
          () => {},
          () => downloadError("too-large", "over 10", "u", false),
        ),
    ).catch((err) => err);
    expect(fields(e).code).toBe("too-large");
    expect(stats.bytes).toBe(6);
  });

  test("a failing fetch is a retryable network error; the headers timeout's error wins when it fired", async () => {
    const stats = newStats();
    const net = await withRequest(
      {
        url: "u",
        headers: {},
        stats,
        fetch: async () => {
          throw new Error("ECONNREFUSED");
        },
      },
      async () => 0,
    ).catch((err) => err);
    expect(fields(net)).toMatchObject({ code: "network", retryable: true });

    const slow = await withRequest(
      {
        url: "u",
        headers: {},
        stats,
        headersTimeout: {
          ms: 5,
          error: () => downloadError("timeout", "no response", "u", true),
        },
        fetch: (_u, init) =>
          new Promise((_, reject) =>
            init.signal?.addEventListener("abort", () => reject(new Error("aborted"))),
          ),
      },
      async () => 0,
    ).catch((err) => err);
    expect(fields(slow)).toMatchObject({ code: "timeout", retryable: true });
  });

  test("the caller's AbortSignal aborts with a non-retryable 'aborted'", async () => {
    const ac = new AbortController();
    const e = await withRequest(
      {
        url: "u",
        headers: {},
        stats: newStats(),
        signal: ac.signal,
        fetch: (_u, init) =>
          new Promise((_, reject) => {
            init.signal?.addEventListener("abort", () => reject(new Error("aborted")));
            ac.abort();
          }),
      },
      async () => 0,
    ).catch((err) => err);
    expect(fields(e)).toMatchObject({ code: "aborted", retryable: false });
  });
});
