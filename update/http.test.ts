import { describe, expect, test } from "bun:test";
import type { HeroError } from "../lib/errors.ts";
import {
  cacheControlFor,
  contentTypeFor,
  etagFor,
  ifRangeAllows,
  matchesStrong,
  matchesWeak,
  parseListen,
  parseRange,
  preconditions,
  safeSegments,
} from "./http.ts";

describe("safeSegments", () => {
  test("decodes ordinary paths", () => {
    expect(safeSegments("/production/bin/mycelium-0.5.6")).toEqual([
      "production",
      "bin",
      "mycelium-0.5.6",
    ]);
    expect(safeSegments("/a%20b/c%2Bd")).toEqual(["a b", "c+d"]);
  });
  test("refuses traversal, dotfiles, empty segments, hidden separators", () => {
    for (const p of [
      "/",
      "/a/",
      "//a",
      "/a/../b",
      "/..",
      "/./a",
      "/%2e%2e/x",
      "/.git/config",
      "/a/.env",
      "/a%2fb",
      "/a%5cb",
      "/a%00",
      "/a%0a",
      "/%zz",
      "relative",
      `/${"a/".repeat(40)}x`,
      `/${"x".repeat(300)}`,
    ]) {
      expect({ p, r: safeSegments(p) }).toEqual({ p, r: null });
    }
  });
});

test("contentTypeFor", () => {
  expect(contentTypeFor("bootstrapper.toml")).toBe("application/toml; charset=utf-8");
  expect(contentTypeFor("bootstrapper.toml.minisig")).toBe("text/plain; charset=utf-8");
  expect(contentTypeFor("mycelium-0.5.6")).toBe("application/octet-stream");
  expect(contentTypeFor("hero-init-0.1.0.tar.gz")).toBe("application/gzip");
  expect(contentTypeFor(".toml")).toBe("application/octet-stream");
  expect(contentTypeFor("x.EXE")).toBe("application/octet-stream");
});

test("cacheControlFor: manifests revalidate, versioned names are immutable", () => {
  const imm = "public, max-age=31536000, immutable";
  expect(cacheControlFor("production/bootstrapper.toml")).toBe("no-cache");
  expect(cacheControlFor("production/bootstrapper-1.2.toml")).toBe("no-cache");
  expect(cacheControlFor("production/bootstrapper.toml.minisig")).toBe("no-cache");
  expect(cacheControlFor("production/bin/mycelium-0.5.6")).toBe(imm);
  expect(cacheControlFor("v1.2/mycelium")).toBe(imm);
  expect(cacheControlFor("bin/zinit_0.2.1")).toBe(imm);
  expect(cacheControlFor(`blobs/${"ab".repeat(32)}`)).toBe(imm);
  expect(cacheControlFor("production/bin/mycelium")).toBe("no-cache");
  expect(cacheControlFor("production/bin/x86.64")).toBe("no-cache");
});

test("etagFor: strong, from mtime ns and size", () => {
  expect(etagFor(255, 0x10n)).toBe('"10-ff"');
  expect(etagFor(1n, 1_700_000_000_123_456_789n)).not.toBe(etagFor(1n, 1_700_000_000_987_654_321n));
});

describe("entity-tag comparison", () => {
  test("weak ignores W/, strong does not", () => {
    expect(matchesWeak('W/"a"', '"a"')).toBe(true);
    expect(matchesWeak('"b", "a"', '"a"')).toBe(true);
    expect(matchesWeak('"b"', '"a"')).toBe(false);
    expect(matchesStrong('W/"a"', '"a"')).toBe(false);
    expect(matchesStrong('"a"', '"a"')).toBe(true);
    expect(matchesStrong("garbage", '"a"')).toBe(false);
  });
});

describe("preconditions", () => {
  const v = { etag: '"e"', mtimeMs: Date.parse("2026-01-01T00:00:00.700Z") };
  const h = (o: Record<string, string>) => new Headers(o);
  test("304 / 412 / go on", () => {
    expect(preconditions(h({}), v)).toBeNull();
    expect(preconditions(h({ "If-None-Match": '"e"' }), v)).toBe(304);
    expect(preconditions(h({ "If-None-Match": '"x"' }), v)).toBeNull();
    expect(preconditions(h({ "If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT" }), v)).toBe(304);
    expect(
      preconditions(h({ "If-Modified-Since": "Wed, 31 Dec 2025 23:59:59 GMT" }), v),
    ).toBeNull();
    expect(preconditions(h({ "If-Modified-Since": "junk" }), v)).toBeNull();
    expect(preconditions(h({ "If-Match": '"x"' }), v)).toBe(412);
    expect(preconditions(h({ "If-Match": '"e"', "If-None-Match": '"e"' }), v)).toBe(304);
    expect(preconditions(h({ "If-Unmodified-Since": "Wed, 31 Dec 2025 00:00:00 GMT" }), v)).toBe(
      412,
    );
  });
  test("If-Range: strong ETag or exact date", () => {
    expect(ifRangeAllows(h({}), v)).toBe(true);
    expect(ifRangeAllows(h({ "If-Range": '"e"' }), v)).toBe(true);
    expect(ifRangeAllows(h({ "If-Range": 'W/"e"' }), v)).toBe(false);
    expect(ifRangeAllows(h({ "If-Range": '"x"' }), v)).toBe(false);
    expect(ifRangeAllows(h({ "If-Range": "Thu, 01 Jan 2026 00:00:00 GMT" }), v)).toBe(true);
    expect(ifRangeAllows(h({ "If-Range": "Thu, 01 Jan 2026 00:00:01 GMT" }), v)).toBe(false);
  });
});

describe("parseRange", () => {
  test("single ranges", () => {
    expect(parseRange("bytes=0-9", 100)).toEqual({ kind: "partial", start: 0, end: 9 });
    expect(parseRange("bytes=90-", 100)).toEqual({ kind: "partial", start: 90, end: 99 });
    expect(parseRange("bytes=-10", 100)).toEqual({ kind: "partial", start: 90, end: 99 });
    expect(parseRange("bytes=-1000", 100)).toEqual({ kind: "partial", start: 0, end: 99 });
    expect(parseRange("BYTES = 5 - 500", 100)).toEqual({ kind: "partial", start: 5, end: 99 });
  });
  test("unsatisfiable", () => {
    expect(parseRange("bytes=100-", 100)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=-0", 100)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange("bytes=0-", 0)).toEqual({ kind: "unsatisfiable" });
    expect(parseRange(`bytes=${"9".repeat(30)}-`, 100)).toEqual({ kind: "unsatisfiable" });
  });
  test("ignored: absent, malformed, other units, several ranges", () => {
    for (const r of [
      null,
      "",
      "bytes=",
      "bytes=-",
      "bytes=5-1",
      "items=0-1",
      "bytes=0-1,3-4",
      "bytes=a-b",
    ]) {
      expect(parseRange(r, 100)).toEqual({ kind: "full" });
    }
  });
});

describe("parseListen", () => {
  test("forms", () => {
    expect(parseListen("[::]:8080")).toEqual({ hostname: "::", port: 8080 });
    expect(parseListen("[::1]:0")).toEqual({ hostname: "::1", port: 0 });
    expect(parseListen("127.0.0.1:9000")).toEqual({ hostname: "127.0.0.1", port: 9000 });
    expect(parseListen(":80")).toEqual({ hostname: "::", port: 80 });
    expect(parseListen("8080")).toEqual({ hostname: "::", port: 8080 });
    expect(parseListen("localhost:1")).toEqual({ hostname: "localhost", port: 1 });
  });
  test("errors name --listen", () => {
    for (const s of ["", "::1:80", "host", "1.2.3.4:99999", "1.2.3.4:-1", "a b:80", "[::]:x"]) {
      expect(() => parseListen(s)).toThrow(expect.objectContaining({ code: "listen" }));
    }
    let err: unknown;
    try {
      parseListen("x:y");
    } catch (e) {
      err = e;
    }
    expect((err as HeroError).where.field).toBe("--listen");
  });
});
