import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { fakeSource } from "../../../test/helpers/fake-ui-source.ts";
import type { LogLine } from "../../supervisor/logs.ts";
import { createResponder, type UiApp } from "../http.ts";
import { LOG_PAGE_LINES, type LogOptions, logRoutes, parseLogQuery } from "./logs.ts";

/** The log routes for a read-only client; the ring's live subscriptions are counted. */
function app(o: LogOptions = {}) {
  const f = fakeSource();
  const ring = { subscriptions: 0, live: 0 };
  const subscribe = f.source.logs.subscribe;
  f.source.logs.subscribe = (fn: (l: LogLine) => void) => {
    ring.subscriptions++;
    ring.live++;
    const off = subscribe(fn);
    return () => {
      ring.live--;
      off();
    };
  };
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "127.0.0.1");
    c.set("session", null);
    c.set("role", "readonly");
    await next();
  });
  a.route("/", logRoutes(f.source, createResponder({ terminal: false }), o));
  return { a, ring, push: (s: string, t: string) => f.ring.push(s, "stdout", t) };
}

const SSE = { headers: { accept: "text/event-stream" } };

/** Reads a stream until `until` matches what came so far (or 2 s pass); leaves it open. */
async function readUntil(
  reader: { read(): Promise<{ done: boolean; value?: Uint8Array }> },
  until: RegExp,
) {
  const dec = new TextDecoder();
  let text = "";
  const deadline = Date.now() + 2000;
  while (!until.test(text) && Date.now() < deadline) {
    const r = await Promise.race([
      reader.read(),
      Bun.sleep(Math.max(0, deadline - Date.now())).then(() => null),
    ]);
    if (!r || r.done) break;
    text += dec.decode(r.value);
  }
  return text;
}

describe("log query", () => {
  test("a page: after (from Last-Event-ID first), limit 1…LOG_PAGE_LINES, all by default", () => {
    expect(parseLogQuery({})).toEqual({ stream: false, after: 0, limit: LOG_PAGE_LINES });
    expect(parseLogQuery({ after: "7", limit: "10" })).toEqual({
      stream: false,
      after: 7,
      limit: 10,
    });
    expect(parseLogQuery({ lastEventId: "9", after: "7" })).toMatchObject({ after: 9 });
    for (const bad of ["-1", "x", "1.5", "1e30"])
      expect(parseLogQuery({ after: bad })).toMatchObject({ after: 0 });
    for (const bad of ["0", "1001", "x", "1.5", ""])
      expect(parseLogQuery({ limit: bad })).toEqual({
        error: `limit must be a whole number from 1 to ${LOG_PAGE_LINES}`,
      });
  });

  test("a stream: asked for by Accept; its limit is not looked at", () => {
    expect(parseLogQuery({ accept: "text/event-stream", lastEventId: "3", limit: "x" })).toEqual({
      stream: true,
      after: 3,
    });
  });
});

describe("log routes", () => {
  test("an unknown service: 404 naming it; a bad limit: 400", async () => {
    const { a } = app();
    const none = await a.request("/api/v1/services/nope/logs");
    expect(none.status).toBe(404);
    expect(await none.json()).toEqual({ error: 'no service "nope"' });
    expect((await a.request("/api/v1/services/nope/logs", SSE)).status).toBe(404);
    expect((await a.request("/api/v1/logs?limit=0")).status).toBe(400);
  });

  test("a page unread holds its slot: beyond maxPages 503, until it is read to its end", async () => {
    const { a, push } = app({ maxPages: 1 });
    push("web", "one");
    const first = await a.request("/api/v1/logs");
    expect(first.status).toBe(200);
    const busy = await a.request("/api/v1/logs");
    expect(busy.status).toBe(503);
    expect(await busy.json()).toEqual({ error: "at most 1 log pages at once" });
    expect(((await first.json()) as { text: string }[]).map((l) => l.text)).toEqual(["one"]);
    expect((await a.request("/api/v1/logs")).status).toBe(200);
  });

  test("live followers share one ring subscription; a service's stream gets only its lines", async () => {
    const { a, ring, push } = app();
    const open = async (path: string) =>
      ((await a.request(path, SSE)).body as ReadableStream<Uint8Array>).getReader();
    const all = await open("/api/v1/logs");
    const web = await open("/api/v1/services/web/logs");
    expect(await readUntil(all, /retry: /)).toContain("retry: 2000");
    expect(await readUntil(web, /retry: /)).toContain("retry: 2000");
    for (let i = 0; i < 200 && ring.live === 0; i++) await Bun.sleep(10);
    push("other", "not for web");
    push("web", "for web");
    const seenByAll = await readUntil(all, /"text":"for web"/);
    const seenByWeb = await readUntil(web, /"text":"for web"/);
    expect(seenByAll).toContain('"text":"not for web"');
    expect(seenByAll).toContain('"text":"for web"');
    expect(seenByWeb).toContain('"text":"for web"');
    expect(seenByWeb).not.toContain("not for web");
    expect(ring.subscriptions).toBe(1);
    await all.cancel();
    await web.cancel();
    expect(ring.live).toBe(0);
  });

  test("followers beyond maxFollowers: 503; the SSE answer is not buffered by proxies", async () => {
    const { a } = app({ maxFollowers: 1 });
    const one = await a.request("/api/v1/logs", SSE);
    expect(one.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(one.headers.get("x-accel-buffering")).toBe("no");
    const two = await a.request("/api/v1/logs", SSE);
    expect(two.status).toBe(503);
    expect(await two.json()).toEqual({ error: "at most 1 log followers" });
    await one.body?.cancel();
  });
});
