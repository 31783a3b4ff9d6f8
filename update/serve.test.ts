import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { rng } from "../test/fuzz/rng.ts";
import { type BootstrapServer, startServer } from "./serve.ts";

const tmp = mkdtempSync(join(tmpdir(), "hero-serve-"));
const root = join(tmp, "root");
const BIN = Uint8Array.from({ length: 100_000 }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
const MANIFEST = 'version = 7\nexpires = "2030-01-01T00:00:00Z"\n';
let srv: BootstrapServer;
const logs: string[] = [];
const url = (p: string) => `${srv.url}${p.replace(/^\//, "")}`;

/** Sends an exact request (no URL normalisation) and returns the status and raw response. */
function raw(request: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(srv.port, "127.0.0.1");
    const chunks: Buffer[] = [];
    s.on("data", (d: Buffer) => chunks.push(d));
    s.on("error", reject);
    s.on("close", () => {
      const text = Buffer.concat(chunks).toString("latin1");
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), text });
    });
    s.write(request);
  });
}
const rawGet = (path: string) =>
  raw(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);

beforeAll(() => {
  mkdirSync(join(root, "production/bin"), { recursive: true });
  mkdirSync(join(root, "dev"), { recursive: true });
  mkdirSync(join(root, ".git"), { recursive: true });
  writeFileSync(join(root, "production/bootstrapper.toml"), MANIFEST);
  writeFileSync(join(root, "production/bootstrapper.toml.minisig"), "untrusted comment: x\n");
  writeFileSync(join(root, "production/bin/mycelium-0.5.6"), BIN);
  writeFileSync(join(root, "production/bin/empty"), "");
  writeFileSync(join(root, "production/.secret"), "no");
  writeFileSync(join(root, ".git/config"), "no");
  writeFileSync(join(tmp, "outside"), "outside");
  symlinkSync(join(tmp, "outside"), join(root, "production/escape"));
  symlinkSync("../production/bin/mycelium-0.5.6", join(root, "dev/mycelium"));
  symlinkSync("../production/.secret", join(root, "dev/not-secret"));
  utimesSync(join(root, "production/bootstrapper.toml"), 1_700_000_000, 1_700_000_000);
  srv = startServer({ dir: root, hostname: "127.0.0.1", port: 0, log: (l) => logs.push(l) });
});
afterAll(async () => {
  await srv.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("hero-init serve", () => {
  test("200 with validators, type, length and cache policy", async () => {
    const r = await fetch(url("production/bootstrapper.toml"));
    expect(r.status).toBe(200);
    expect(await r.text()).toBe(MANIFEST);
    expect(r.headers.get("etag")).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    expect(r.headers.get("last-modified")).toBe(new Date(1_700_000_000_000).toUTCString());
    expect(r.headers.get("content-type")).toBe("application/toml; charset=utf-8");
    expect(r.headers.get("content-length")).toBe(String(MANIFEST.length));
    expect(r.headers.get("cache-control")).toBe("no-cache");
    expect(r.headers.get("accept-ranges")).toBe("bytes");
    const b = await fetch(url("production/bin/mycelium-0.5.6"));
    expect(new Uint8Array(await b.arrayBuffer())).toEqual(BIN);
    expect(b.headers.get("content-type")).toBe("application/octet-stream");
    expect(b.headers.get("cache-control")).toContain("immutable");
    const s = await fetch(url("production/bootstrapper.toml.minisig"));
    expect(s.headers.get("content-type")).toBe("text/plain; charset=utf-8");
  });

  test("If-None-Match and If-Modified-Since → 304 without a body", async () => {
    const first = await fetch(url("production/bootstrapper.toml"));
    const etag = first.headers.get("etag") as string;
    for (const h of [
      { "If-None-Match": etag } as Record<string, string>,
      { "If-None-Match": `"nope", W/${etag}` },
      { "If-None-Match": "*" },
      { "If-Modified-Since": first.headers.get("last-modified") as string },
    ]) {
      const r = await fetch(url("production/bootstrapper.toml"), { headers: h });
      expect(r.status).toBe(304);
      expect(await r.text()).toBe("");
      expect(r.headers.get("etag")).toBe(etag);
    }
    const changed = await fetch(url("production/bootstrapper.toml"), {
      headers: { "If-None-Match": '"other"' },
    });
    expect(changed.status).toBe(200);
    // If-None-Match wins over If-Modified-Since.
    const both = await fetch(url("production/bootstrapper.toml"), {
      headers: { "If-None-Match": '"other"', "If-Modified-Since": new Date().toUTCString() },
    });
    expect(both.status).toBe(200);
    const old = await fetch(url("production/bootstrapper.toml"), {
      headers: { "If-Modified-Since": new Date(1_600_000_000_000).toUTCString() },
    });
    expect(old.status).toBe(200);
  });

  test("If-Match mismatch → 412", async () => {
    const r = await fetch(url("production/bootstrapper.toml"), {
      headers: { "If-Match": '"other"' },
    });
    expect(r.status).toBe(412);
  });

  test("the ETag changes when the file is replaced within the same second", async () => {
    const p = join(root, "dev/m.toml");
    writeFileSync(p, "a");
    utimesSync(p, 1_700_000_000.1, 1_700_000_000.1);
    const a = (await fetch(url("dev/m.toml"))).headers.get("etag");
    writeFileSync(p, "b");
    utimesSync(p, 1_700_000_000.6, 1_700_000_000.6);
    const b = (await fetch(url("dev/m.toml"))).headers.get("etag");
    expect(a).not.toBe(b);
  });

  test("HEAD: headers and length, no body", async () => {
    const r = await fetch(url("production/bin/mycelium-0.5.6"), { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-length")).toBe(String(BIN.length));
    expect((await r.arrayBuffer()).byteLength).toBe(0);
    const h = await rawGet("/production/bin/mycelium-0.5.6");
    expect(h.status).toBe(200);
    const head = await raw(
      "HEAD /production/bin/mycelium-0.5.6 HTTP/1.1\r\nHost: x\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n",
    );
    expect(head.status).toBe(206);
    expect(head.text).toMatch(/content-length: 10\r\n/i);
    expect(head.text.endsWith("\r\n\r\n")).toBe(true);
  });

  test("single Range → 206 with Content-Range", async () => {
    const get = (range: string, extra: Record<string, string> = {}) =>
      fetch(url("production/bin/mycelium-0.5.6"), { headers: { Range: range, ...extra } });
    const r = await get("bytes=1000-1999");
    expect(r.status).toBe(206);
    expect(r.headers.get("content-range")).toBe(`bytes 1000-1999/${BIN.length}`);
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(BIN.slice(1000, 2000));
    const open = await get("bytes=99990-");
    expect(new Uint8Array(await open.arrayBuffer())).toEqual(BIN.slice(99990));
    const suffix = await get("bytes=-5");
    expect(suffix.headers.get("content-range")).toBe(`bytes 99995-99999/${BIN.length}`);
    const clipped = await get("bytes=99999-200000");
    expect(clipped.headers.get("content-range")).toBe(`bytes 99999-99999/${BIN.length}`);
  });

  test("unsatisfiable Range → 416 with bytes */size", async () => {
    for (const range of ["bytes=100000-", "bytes=-0", "bytes=200000-300000"]) {
      const r = await fetch(url("production/bin/mycelium-0.5.6"), { headers: { Range: range } });
      expect(r.status).toBe(416);
      expect(r.headers.get("content-range")).toBe(`bytes */${BIN.length}`);
    }
    const e = await fetch(url("production/bin/empty"), { headers: { Range: "bytes=0-" } });
    expect(e.status).toBe(416);
  });

  test("If-Range: a stale validator, several ranges or junk get the whole file", async () => {
    const etag = (
      await fetch(url("production/bin/mycelium-0.5.6"), { method: "HEAD" })
    ).headers.get("etag") as string;
    const ok = await fetch(url("production/bin/mycelium-0.5.6"), {
      headers: { Range: "bytes=10-19", "If-Range": etag },
    });
    expect(ok.status).toBe(206);
    for (const headers of [
      { Range: "bytes=10-19", "If-Range": '"stale"' } as Record<string, string>,
      { Range: "bytes=10-19", "If-Range": `W/${etag}` },
      { Range: "bytes=10-19", "If-Range": "Mon, 01 Jan 2001 00:00:00 GMT" },
      { Range: "bytes=0-9,20-29" },
      { Range: "bytes=9-2" },
      { Range: "items=0-9" },
    ]) {
      const r = await fetch(url("production/bin/mycelium-0.5.6"), { headers });
      expect(r.status).toBe(200);
      expect(r.headers.get("content-range")).toBeNull();
      expect(new Uint8Array(await r.arrayBuffer())).toEqual(BIN);
    }
  });

  test("empty file → 200 with length 0", async () => {
    const r = await fetch(url("production/bin/empty"));
    expect(r.status).toBe(200);
    expect(r.headers.get("content-length")).toBe("0");
  });

  test("traversal, dotfiles, symlink escapes, directories and missing files → 404", async () => {
    for (const p of [
      "/../outside",
      "/production/../../outside",
      "/%2e%2e/outside",
      "/production/%2e%2e%2f%2e%2e%2foutside",
      "/production/..%5c..%5coutside",
      "/production/.secret",
      "/.git/config",
      "/production/%2esecret",
      "/production/escape",
      "/dev/not-secret",
      "/production/",
      "/production",
      "/",
      "//production/bootstrapper.toml",
      "/production/bin/mycelium-0.5.6%00",
      "/nope",
      "/production/bootstrapper.toml/x",
      "/%ff%fe",
    ]) {
      const r = await rawGet(p);
      expect({ p, status: r.status }).toEqual({ p, status: 404 });
      expect(r.text).not.toContain("outside");
      expect(r.text).not.toContain("[core]");
    }
  });

  test("a symlink that stays inside DIR is served", async () => {
    const r = await fetch(url("dev/mycelium"));
    expect(r.status).toBe(200);
    expect((await r.arrayBuffer()).byteLength).toBe(BIN.length);
  });

  test("other methods → 405 with Allow", async () => {
    const r = await fetch(url("production/bootstrapper.toml"), { method: "POST", body: "x" });
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("GET, HEAD");
  });

  test("one access-log line per request: method path status bytes ms", async () => {
    logs.length = 0;
    await fetch(url("production/bin/mycelium-0.5.6"), { headers: { Range: "bytes=0-99" } });
    await rawGet('/x%0a%01y"z');
    expect(logs[0]).toMatch(
      /^127\.0\.0\.1 GET \/production\/bin\/mycelium-0\.5\.6 206 100 [\d.]+ms$/,
    );
    expect(logs[1]).toMatch(/ 404 \d+ [\d.]+ms$/);
    expect(logs[1]).not.toContain("\n");
  });

  test("fuzz: random paths and headers never crash the server or give 5xx", async () => {
    const r = rng(7);
    const parts = [
      "production",
      "bin",
      "mycelium-0.5.6",
      "..",
      ".",
      "%2e",
      "%2f",
      "%00",
      "%",
      "\\",
    ];
    const hdrs = ["Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match"];
    const vals = ["bytes=", "-", ",", '"', "W/", "*", "0", "99999999999999999999", "GMT", " "];
    for (let i = 0; i < 300; i++) {
      const path = `/${Array.from({ length: 1 + r.int(4) }, () => r.pick(parts)).join("/")}`;
      const h = Array.from({ length: r.int(3) }, () => {
        const v = Array.from({ length: 1 + r.int(4) }, () => r.pick(vals)).join("");
        return `${r.pick(hdrs)}: ${r.mutate(v)}`.replace(/[\r\n]/g, "");
      });
      const res = await raw(
        `${r.pick(["GET", "HEAD"])} ${path.replace(/ /g, "")} HTTP/1.1\r\nHost: x\r\n${h.map((x) => `${x}\r\n`).join("")}Connection: close\r\n\r\n`,
      );
      // An answer for every request: a dropped connection is a failure, as is a 5xx.
      expect({ path, h, ok: res.status >= 200 && res.status < 500 }).toEqual({ path, h, ok: true });
    }
    expect((await fetch(url("production/bootstrapper.toml"))).status).toBe(200);
  });
});
