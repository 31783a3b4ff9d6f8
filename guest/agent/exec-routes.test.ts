/**
 * exec-routes.ts through app.request, the sub-app mounted alone: POST exec
 * answers a framed stream (real sh), the request checks and their order,
 * the body limit, the shared exec limit, and the WebSocket upgrade against
 * a stub of Bun's server.
 */
import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import {
  API_PREFIX,
  CH_EXIT,
  CH_STDERR,
  CH_STDOUT,
  decodeExit,
  FrameDecoder,
  STREAM_CONTENT_TYPE,
} from "../../lib/agent-protocol.ts";
import { DEFAULT_TUNING, defaultSpawn, type ExecWsData } from "./exec.ts";
import { execRoutes } from "./exec-routes.ts";
import { type AgentEnv, type AgentHono, answerError, noSuchEndpoint } from "./http.ts";
import { ExecSlots } from "./slots.ts";

function mount(slots = new ExecSlots(4), maxExecBody = 1024 * 1024, logs: string[] = []) {
  const app = new Hono<AgentHono>();
  app.use(async (c, next) => {
    c.set("ip", "10.0.0.7");
    await next();
  });
  app.route(
    API_PREFIX,
    execRoutes({
      spawn: defaultSpawn,
      tuning: DEFAULT_TUNING,
      groups: null,
      slots,
      maxExecBody,
      log: (_l, m) => void logs.push(m),
    }),
  );
  app.notFound(noSuchEndpoint);
  app.onError(answerError(() => {}));
  return app;
}

const post = (body: string | ReadableStream<Uint8Array>, headers: Record<string, string> = {}) => ({
  method: "POST",
  body,
  headers,
});

async function frames(res: Response) {
  const dec = new FrameDecoder();
  const out = { stdout: "", stderr: "", exit: null as unknown };
  for (const f of dec.push(new Uint8Array(await res.arrayBuffer()))) {
    const text = new TextDecoder().decode(f.payload);
    if (f.channel === CH_STDOUT) out.stdout += text;
    if (f.channel === CH_STDERR) out.stderr += text;
    if (f.channel === CH_EXIT) out.exit = decodeExit(f.payload);
  }
  expect(dec.pending).toBe(0);
  return out;
}

describe("POST exec", () => {
  test("streams stdout, stderr and the exit as frames, and frees its slot", async () => {
    const slots = new ExecSlots(4);
    const logs: string[] = [];
    const r = await mount(slots, undefined, logs).request(
      "/agent/v1/exec",
      post(JSON.stringify({ argv: ["sh", "-c", "echo out; echo err >&2; exit 3"] })),
    );
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toBe(STREAM_CONTENT_TYPE);
    expect(r.headers.get("cache-control")).toBe("no-store");
    expect(await frames(r)).toEqual({ stdout: "out\n", stderr: "err\n", exit: { code: 3 } });
    for (let i = 0; i < 100 && slots.running > 0; i++) await Bun.sleep(10);
    expect(slots.running).toBe(0);
    expect(logs).toEqual(["exec sh for 10.0.0.7"]);
  });

  test("a missing command is an exit frame with 127, not an HTTP error", async () => {
    const r = await mount().request(
      "/agent/v1/exec",
      post(JSON.stringify({ argv: ["/nonexistent/hero-exec-routes"] })),
    );
    expect(r.status).toBe(200);
    expect(((await frames(r)).exit as { code: number }).code).toBe(127);
  });

  test("bad JSON, a bad field and a missing cwd are 400 with the reason", async () => {
    const app = mount();
    const cases: [string, string][] = [
      ["{", "body is not valid JSON"],
      ["", "body is not valid JSON"],
      [JSON.stringify({ argv: [] }), "argv"],
      [JSON.stringify({ argv: ["true"], bogus: 1 }), "bogus"],
      [JSON.stringify({ argv: ["true"], cwd: "/nonexistent-hero-dir" }), "does not exist"],
    ];
    for (const [body, why] of cases) {
      const r = await app.request("/agent/v1/exec", post(body));
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: string }).error).toContain(why);
    }
  });

  test("a body over the limit is 413, declared or streamed", async () => {
    const app = mount(undefined, 16);
    const body = JSON.stringify({ argv: ["echo", "far too long"] });
    let r = await app.request(
      "/agent/v1/exec",
      post(body, { "content-length": String(body.length) }),
    );
    expect(r.status).toBe(413);
    expect(await r.json()).toEqual({ error: "request body too large (limit 16 bytes)" });
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(new TextEncoder().encode(body));
        c.close();
      },
    });
    r = await app.request("/agent/v1/exec", post(stream));
    expect(r.status).toBe(413);
  });

  test("all slots taken is 429; a bad request does not take one", async () => {
    const slots = new ExecSlots(1);
    expect(slots.take()).toBe(true);
    const app = mount(slots);
    const r = await app.request("/agent/v1/exec", post(JSON.stringify({ argv: ["true"] })));
    expect(r.status).toBe(429);
    expect(await r.json()).toEqual({ error: "too many execs running (limit 1)" });
    slots.release();
    expect((await app.request("/agent/v1/exec", post("{"))).status).toBe(400);
    expect(slots.running).toBe(0);
  });

  test("other methods are 404", async () => {
    for (const method of ["GET", "PUT", "HEAD", "DELETE"]) {
      const r = await mount().request("/agent/v1/exec", { method });
      expect(r.status).toBe(404);
      if (method !== "HEAD")
        expect(await r.json()).toEqual({ error: `no such endpoint: ${method} /agent/v1/exec` });
    }
  });
});

describe("GET exec/ws", () => {
  const ws = { upgrade: "websocket", connection: "upgrade" };
  function bun(answer: boolean, seen: ExecWsData[]): AgentEnv {
    return {
      upgrade: (_req, o) => {
        seen.push(o.data);
        return answer;
      },
    };
  }

  test("upgrades with the client address and takes a slot", async () => {
    const slots = new ExecSlots(2);
    const seen: ExecWsData[] = [];
    const r = await mount(slots).request("/agent/v1/exec/ws", { headers: ws }, bun(true, seen));
    expect(r.status).toBe(200);
    expect(seen).toEqual([{ kind: "hero-agent-exec", ip: "10.0.0.7" }]);
    expect(slots.running).toBe(1);
  });

  test("a failed upgrade is 400 and gives the slot back", async () => {
    const slots = new ExecSlots(2);
    const r = await mount(slots).request("/agent/v1/exec/ws", { headers: ws }, bun(false, []));
    expect(r.status).toBe(400);
    expect(await r.json()).toEqual({ error: "WebSocket upgrade failed" });
    expect(slots.running).toBe(0);
  });

  test("without Bun's server 500, without an Upgrade header 426, with all slots taken 429", async () => {
    let r = await mount().request("/agent/v1/exec/ws", { headers: ws });
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ error: "WebSocket exec needs Bun.serve" });
    r = await mount().request("/agent/v1/exec/ws", {}, bun(true, []));
    expect(r.status).toBe(426);
    const full = new ExecSlots(1);
    full.take();
    const seen: ExecWsData[] = [];
    r = await mount(full).request("/agent/v1/exec/ws", { headers: ws }, bun(true, seen));
    expect(r.status).toBe(429);
    expect(seen).toEqual([]);
  });

  test("HEAD and other methods are 404, never an upgrade", async () => {
    for (const method of ["HEAD", "POST"]) {
      const seen: ExecWsData[] = [];
      const r = await mount().request(
        "/agent/v1/exec/ws",
        { method, headers: ws },
        bun(true, seen),
      );
      expect(r.status).toBe(404);
      expect(seen).toEqual([]);
    }
  });
});
