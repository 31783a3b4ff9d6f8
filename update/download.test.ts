import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ErrorDetail, isHeroError, shortCode } from "../lib/errors.ts";
import { conditionalGet, type DownloadOptions, download } from "./download.ts";
import { type BootstrapServer, startServer } from "./serve.ts";

const tmp = mkdtempSync(join(tmpdir(), "hero-dl-"));
const root = join(tmp, "root");
const out = join(tmp, "out");
const N = 300_000;
const BIN = Uint8Array.from({ length: N }, (_, i) => (i * 31 + (i >> 9)) & 0xff);
const SHA = createHash("sha256").update(BIN).digest("hex");
const OTHER = BIN.map((b) => b ^ 1);
let srv: BootstrapServer;
const servers: { stop(force?: boolean): unknown }[] = [];
let n = 0;
/** A fresh destination path per test. */
const dest = () => join(out, `bin-${++n}`);
const noWait = { sleep: async () => {}, maxRetries: 3 } satisfies Partial<DownloadOptions>;
const opts = (o: Partial<DownloadOptions> = {}): DownloadOptions => ({
  expectSize: N,
  sha256: SHA,
  ...noWait,
  ...o,
});

/** Starts a loopback Bun.serve with `fetch`; returns its base URL. */
function attack(fetch: (req: Request) => Response | Promise<Response>): string {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch, idleTimeout: 0 });
  servers.push(s);
  return `http://127.0.0.1:${s.port}/`;
}

/** Whatever failed, DEST is absent or still the old content. */
function expectIntact(d: string, old?: string) {
  if (old === undefined) expect(existsSync(d)).toBe(false);
  else expect(readFileSync(d, "utf8")).toBe(old);
}

/** The download error `p` rejects with (checked to be one), as its bare code and detail. */
async function failure(p: Promise<unknown>): Promise<ErrorDetail & { code: string }> {
  try {
    await p;
  } catch (e) {
    expect(isHeroError(e, "download")).toBe(true);
    if (isHeroError(e)) return { ...e.detail, code: shortCode(e.code) };
  }
  throw new Error("expected the download to fail");
}

/** Writes the first `k` bytes as a .part started for etag `etag`. */
function partial(d: string, k: number, etag: string) {
  writeFileSync(`${d}.part`, BIN.slice(0, k));
  writeFileSync(`${d}.part.meta`, JSON.stringify({ sha256: SHA, etag }));
}

beforeAll(() => {
  mkdirSync(join(root, "prod"), { recursive: true });
  mkdirSync(out);
  writeFileSync(join(root, "prod/app-1.0"), BIN);
  writeFileSync(join(root, "prod/forged-1.0"), OTHER);
  writeFileSync(join(root, "prod/big-1.0"), new Uint8Array(N + 10));
  writeFileSync(join(root, "prod/bootstrapper.toml"), "version = 1\n");
  srv = startServer({ dir: root, hostname: "127.0.0.1", port: 0, log: () => {} });
});
afterAll(async () => {
  await srv.stop();
  for (const s of servers) s.stop(true);
  rmSync(tmp, { recursive: true, force: true });
});

describe("download", () => {
  test("from hero-init serve: exact bytes, one request, no .part left", async () => {
    const d = dest();
    const st = await download(`${srv.url}prod/app-1.0`, d, opts());
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(st).toMatchObject({ requests: 1, bytes: N, retries: 0, restarts: 0, resumedFrom: 0 });
    expect(existsSync(`${d}.part`)).toBe(false);
    expect(existsSync(`${d}.part.meta`)).toBe(false);
  });

  test("resumes a .part with Range + If-Range against hero-init serve", async () => {
    const d = dest();
    const etag = (await fetch(`${srv.url}prod/app-1.0`, { method: "HEAD" })).headers.get("etag");
    partial(d, 100_000, etag as string);
    const st = await download(`${srv.url}prod/app-1.0`, d, opts());
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(st).toMatchObject({
      requests: 1,
      bytes: N - 100_000,
      resumedFrom: 100_000,
      restarts: 0,
    });
  });

  test("a changed validator restarts from 0 (the server answers 200 to If-Range)", async () => {
    const d = dest();
    partial(d, 100_000, '"stale"');
    const st = await download(`${srv.url}prod/app-1.0`, d, opts());
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(st).toMatchObject({ requests: 1, bytes: N, restarts: 1 });
  });

  test("a .part started for other bytes is thrown away", async () => {
    const d = dest();
    writeFileSync(`${d}.part`, OTHER.slice(0, 1000));
    writeFileSync(`${d}.part.meta`, JSON.stringify({ sha256: "00".repeat(32), etag: '"x"' }));
    const st = await download(`${srv.url}prod/app-1.0`, d, opts());
    expect(st.bytes).toBe(N);
    expect(st.resumedFrom).toBe(0);
  });

  test("a complete .part from an earlier run is verified and used without a request", async () => {
    const d = dest();
    partial(d, N, '"x"');
    const st = await download("http://127.0.0.1:9/never", d, opts());
    expect(st.requests).toBe(0);
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
  });

  test("wrong hash: refused, the old file stays, no .part kept", async () => {
    const d = dest();
    writeFileSync(d, "old binary");
    const e = await failure(download(`${srv.url}prod/forged-1.0`, d, opts()));
    expect(e.code).toBe("hash-mismatch");
    expect(e.retryable).toBe(false);
    expect(e.stats?.requests).toBe(1);
    expectIntact(d, "old binary");
    expect(existsSync(`${d}.part`)).toBe(false);
  });

  test("Content-Length above the manifest size → too-large before reading the body", async () => {
    const d = dest();
    const e = await failure(download(`${srv.url}prod/big-1.0`, d, opts()));
    expect(e.code).toBe("too-large");
    expect(e.stats?.bytes).toBe(0);
    expectIntact(d);
  });

  test("endless data: aborted at the manifest size", async () => {
    const url = attack(
      () =>
        new Response(
          new ReadableStream({
            pull(c) {
              c.enqueue(new Uint8Array(64 * 1024));
            },
          }),
        ),
    );
    const d = dest();
    writeFileSync(d, "old");
    const e = await failure(download(url, d, opts()));
    expect(e.code).toBe("too-large");
    expect(e.stats?.bytes).toBeLessThanOrEqual(N);
    expect(e.stats?.requests).toBe(1);
    expectIntact(d, "old");
    expect(existsSync(`${d}.part`)).toBe(false);
  });

  test("slow retrieval: aborted below the minimum rate, retried, then given up", async () => {
    let requests = 0;
    const url = attack(() => {
      requests++;
      return new Response(
        new ReadableStream({
          async pull(c) {
            await Bun.sleep(50);
            c.enqueue(new Uint8Array(1));
          },
        }),
        { headers: { ETag: '"drip"' } },
      );
    });
    const d = dest();
    const e = await failure(
      download(url, d, opts({ minRate: { bytesPerSec: 1000, windowMs: 400 }, maxRetries: 1 })),
    );
    expect(e.code).toBe("too-slow");
    expect(requests).toBe(2);
    expect(e.stats?.retries).toBe(1);
    expectIntact(d);
  });

  test("429 with Retry-After, then success: the wait honours Retry-After", async () => {
    let requests = 0;
    const url = attack(() =>
      ++requests === 1
        ? new Response("slow down", { status: 429, headers: { "Retry-After": "3" } })
        : new Response(BIN),
    );
    const waits: number[] = [];
    const d = dest();
    const st = await download(
      url,
      d,
      opts({
        sleep: async (ms) => {
          waits.push(ms);
        },
      }),
    );
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThanOrEqual(3000);
    expect(st).toMatchObject({ requests: 2, retries: 1, bytes: N });
  });

  test("503 forever: maxRetries + 1 requests, then a retryable error", async () => {
    let requests = 0;
    const url = attack(() => {
      requests++;
      return new Response("busy", { status: 503 });
    });
    const e = await failure(download(url, dest(), opts({ maxRetries: 2 })));
    expect(e).toMatchObject({ code: "http-status", status: 503, retryable: true });
    expect(requests).toBe(3);
  });

  test("404 is not retried", async () => {
    const e = await failure(download(`${srv.url}prod/missing`, dest(), opts()));
    expect(e).toMatchObject({ code: "http-status", status: 404, retryable: false });
    expect(e.stats?.requests).toBe(1);
  });

  test("connection cut mid-body, then resumed with Range + If-Range", async () => {
    const seen: string[][] = [];
    const half = 120_000;
    const server = Bun.listen<{ buf: string }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          s.data = { buf: "" };
        },
        data(s, chunk) {
          s.data.buf += chunk.toString("latin1");
          if (!s.data.buf.includes("\r\n\r\n")) return;
          const lines = s.data.buf.split("\r\n");
          s.data.buf = "";
          seen.push(lines);
          const range = lines.find((l) => /^range:/i.test(l));
          if (!range) {
            s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${N}\r\nETag: "v1"\r\n\r\n`);
            s.write(BIN.slice(0, half));
            s.flush();
            setTimeout(() => s.terminate(), 50);
          } else {
            const from = Number(/bytes=(\d+)-/.exec(range)?.[1]);
            s.write(
              `HTTP/1.1 206 Partial Content\r\nContent-Length: ${N - from}\r\nContent-Range: bytes ${from}-${N - 1}/${N}\r\nETag: "v1"\r\nConnection: close\r\n\r\n`,
            );
            s.write(BIN.slice(from));
            s.flush();
            s.end();
          }
        },
      },
    });
    servers.push(server);
    const d = dest();
    const st = await download(`http://127.0.0.1:${server.port}/app`, d, opts());
    server.stop(true);
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(seen).toHaveLength(2);
    const second = (seen[1] ?? []).map((l) => l.toLowerCase());
    const resumedAt = st.resumedFrom;
    expect(resumedAt).toBeGreaterThan(0);
    expect(second).toContain(`range: bytes=${resumedAt}-`);
    expect(second).toContain('if-range: "v1"');
    expect(st.requests).toBe(2);
    expect(st.bytes).toBe(N);
  });

  test("a server that ignores Range: restarts from 0 and still ends correct", async () => {
    const ranges: (string | null)[] = [];
    const url = attack((req) => {
      ranges.push(req.headers.get("range"));
      return new Response(BIN, { headers: { ETag: '"v1"' } });
    });
    const d = dest();
    partial(d, 50_000, '"v1"');
    const st = await download(url, d, opts());
    expect(ranges).toEqual(["bytes=50000-"]);
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(st).toMatchObject({ requests: 1, bytes: N, restarts: 1 });
  });

  test("a resume that mixes two versions is caught by sha256 and redone from 0", async () => {
    let requests = 0;
    const url = attack((req) => {
      requests++;
      const r = req.headers.get("range");
      if (!r) return new Response(BIN, { headers: { ETag: '"v1"' } });
      const from = Number(/bytes=(\d+)-/.exec(r)?.[1]);
      return new Response(OTHER.slice(from), {
        status: 206,
        headers: { ETag: '"v1"', "Content-Range": `bytes ${from}-${N - 1}/${N}` },
      });
    });
    const d = dest();
    partial(d, 1000, '"v1"');
    const st = await download(url, d, opts());
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(requests).toBe(2);
    expect(st.restarts).toBe(1);
  });

  test("no response headers in time → timeout", async () => {
    const url = attack(() => new Promise<Response>(() => {}));
    const e = await failure(download(url, dest(), opts({ headersTimeoutMs: 150, maxRetries: 0 })));
    expect(e.code).toBe("timeout");
  });

  test("the caller's AbortSignal stops it", async () => {
    const url = attack(() => new Promise<Response>(() => {}));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const e = await failure(download(url, dest(), opts({ signal: ac.signal })));
    expect(e.code).toBe("aborted");
  });

  test("kill -9 mid-download: no dest, the .part resumes in the next run", async () => {
    // The same resource (ETag "v1"): the first request stalls after 64 KiB and
    // the downloader is killed; the next run asks only for the rest.
    const ranges: (string | null)[] = [];
    const url = attack((req) => {
      ranges.push(req.headers.get("range"));
      const range = /^bytes=(\d+)-$/.exec(req.headers.get("range") ?? "");
      if (range && req.headers.get("if-range") === '"v1"') {
        const from = Number(range[1]);
        return new Response(BIN.slice(from), {
          status: 206,
          headers: { ETag: '"v1"', "Content-Range": `bytes ${from}-${N - 1}/${N}` },
        });
      }
      return new Response(
        new ReadableStream({
          async start(c) {
            c.enqueue(BIN.slice(0, 64 * 1024));
            await Bun.sleep(10_000);
            c.close();
          },
        }),
        { headers: { ETag: '"v1"', "Content-Length": String(N) } },
      );
    });
    const d = dest();
    const script = `import { download } from ${JSON.stringify(join(import.meta.dir, "download.ts"))};
await download(${JSON.stringify(url)}, ${JSON.stringify(d)}, { expectSize: ${N}, sha256: "${SHA}" });`;
    const child = Bun.spawn([process.execPath, "-e", script], {
      stdout: "ignore",
      stderr: "ignore",
    });
    for (let i = 0; i < 100 && !existsSync(`${d}.part`); i++) await Bun.sleep(50);
    await Bun.sleep(200);
    child.kill(9);
    await child.exited;
    expectIntact(d);
    expect(existsSync(`${d}.part`)).toBe(true);
    const had = readFileSync(`${d}.part`).byteLength;
    expect(had).toBeGreaterThan(0);
    const st = await download(url, d, opts());
    expect(new Uint8Array(readFileSync(d))).toEqual(BIN);
    expect(ranges).toEqual([null, `bytes=${had}-`]);
    expect(st).toMatchObject({ resumedFrom: had, restarts: 0, bytes: N - had, requests: 1 });
  });
});

describe("conditionalGet", () => {
  const u = () => `${srv.url}prod/bootstrapper.toml`;
  test("200 with validators, then 304 for the same ETag or Last-Modified", async () => {
    const a = await conditionalGet(u());
    if (a.status !== 200) throw new Error("expected 200");
    expect(new TextDecoder().decode(a.body)).toBe("version = 1\n");
    expect(a.etag).toBeDefined();
    expect(a.stats).toMatchObject({ requests: 1, bytes: 12 });
    const b = await conditionalGet(u(), { etag: a.etag });
    expect(b.status).toBe(304);
    expect(b.stats.bytes).toBe(0);
    const c = await conditionalGet(u(), { lastModified: a.lastModified });
    expect(c.status).toBe(304);
  });

  test("a changed document → 200 with the new bytes", async () => {
    const p = join(root, "prod/other.toml");
    writeFileSync(p, "version = 1\n");
    const a = await conditionalGet(`${srv.url}prod/other.toml`);
    writeFileSync(p, "version = 22\n");
    const b = await conditionalGet(`${srv.url}prod/other.toml`, {
      etag: a.status === 200 ? a.etag : "",
    });
    expect(b.status).toBe(200);
    if (b.status === 200) expect(new TextDecoder().decode(b.body)).toBe("version = 22\n");
  });

  test("size cap: by Content-Length and by counting", async () => {
    const e1 = await failure(conditionalGet(u(), { maxBytes: 5 }));
    expect(e1.code).toBe("too-large");
    const url = attack(
      () =>
        new Response(
          new ReadableStream({
            pull(c) {
              c.enqueue(new Uint8Array(1024));
            },
          }),
        ),
    );
    const e2 = await failure(conditionalGet(url, { maxBytes: 10_000 }));
    expect(e2.code).toBe("too-large");
  });

  test("errors carry the status and Retry-After", async () => {
    const url = attack(() => new Response("", { status: 429, headers: { "Retry-After": "7" } }));
    const e = await failure(conditionalGet(url));
    expect(e).toMatchObject({
      code: "http-status",
      status: 429,
      retryable: true,
      retryAfterMs: 7000,
    });
    const m = await failure(conditionalGet(`${srv.url}prod/none.toml`));
    expect(m).toMatchObject({ status: 404, retryable: false });
  });
});
