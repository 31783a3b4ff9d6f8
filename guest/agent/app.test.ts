/**
 * app.ts through app.request: the composed agent (middleware in front of
 * the three sub-apps), its 404 for unknown endpoints, routing on the raw
 * path, and the error handler that turns every exception into JSON.
 */
import { describe, expect, test } from "bun:test";
import { agentError } from "../../lib/agent-protocol.ts";
import { type AgentAppDeps, createAgentApp } from "./app.ts";
import { DEFAULT_TUNING, defaultSpawn } from "./exec.ts";
import type { AgentEnv } from "./http.ts";
import { ExecSlots } from "./slots.ts";

const TOKEN = "0123456789abcdef0123456789abcdef";
const auth = { authorization: `Bearer ${TOKEN}` };
const env: AgentEnv = { requestIP: () => ({ address: "127.0.0.1" }) };

function app(d: Partial<AgentAppDeps> = {}) {
  return createAgentApp({
    token: TOKEN,
    allow: (ip) => ip === "127.0.0.1",
    spawn: defaultSpawn,
    tuning: DEFAULT_TUNING,
    groups: null,
    slots: new ExecSlots(2),
    maxExecBody: 1024,
    maxFileSize: 1024,
    maxWaitMs: 1000,
    status: () => ({ ok: 1 }),
    log: () => {},
    ...d,
  });
}
const errorOf = async (r: Response) => ((await r.json()) as { error: string }).error;

describe("composition", () => {
  test("each sub-app answers under /agent/v1 behind the checks", async () => {
    const a = app();
    expect((await a.request("/agent/v1/status", { headers: auth }, env)).status).toBe(200);
    expect((await a.request("/agent/v1/stat?path=/", { headers: auth }, env)).status).toBe(200);
    const r = await a.request(
      "/agent/v1/exec",
      { method: "POST", headers: auth, body: JSON.stringify({ argv: ["true"] }) },
      env,
    );
    expect(r.status).toBe(200);
    await r.arrayBuffer();
  });

  test("source before token before prefix", async () => {
    const a = app();
    const other: AgentEnv = { requestIP: () => ({ address: "10.0.0.1" }) };
    expect((await a.request("/agent/v1/status", { headers: auth }, other)).status).toBe(403);
    expect((await a.request("/nowhere", {}, env)).status).toBe(401);
    const r = await a.request("/nowhere", { headers: auth }, env);
    expect(r.status).toBe(404);
    expect(await errorOf(r)).toContain("the API is under /agent/v1/");
  });
});

describe("unknown endpoints", () => {
  test("404 JSON naming the method and path", async () => {
    const a = app();
    for (const [method, path] of [
      ["GET", "/agent/v1/nope"],
      ["DELETE", "/agent/v1/exec"],
      ["GET", "/agent/v1/status/"],
      ["GET", "/agent/v1/"],
    ] as const) {
      const r = await a.request(path, { method, headers: auth }, env);
      expect(r.status).toBe(404);
      expect(await errorOf(r)).toBe(`no such endpoint: ${method} ${path}`);
    }
  });

  test("routes match the raw path: a percent-encoded name is not an endpoint", async () => {
    const r = await app().request("/agent/v1/%73tatus", { headers: auth }, env);
    expect(r.status).toBe(404);
    expect(await errorOf(r)).toBe("no such endpoint: GET /agent/v1/%73tatus");
  });
});

describe("errors", () => {
  test("an agent error answers with its status and message", async () => {
    const a = app({
      status: () => {
        throw agentError(409, "busy right now");
      },
    });
    const r = await a.request("/agent/v1/status", { headers: auth }, env);
    expect(r.status).toBe(409);
    expect(await r.json()).toEqual({ error: "busy right now" });
  });

  test("any other exception is a logged 500 naming it", async () => {
    const logs: string[] = [];
    const a = app({
      status: () => {
        throw new Error("boom");
      },
      log: (level, msg) => void logs.push(`${level}: ${msg}`),
    });
    const r = await a.request("/agent/v1/status", { headers: auth }, env);
    expect(r.status).toBe(500);
    expect(await r.json()).toEqual({ error: "internal error: boom" });
    expect(logs).toEqual(["warn: internal error: boom"]);
  });
});
