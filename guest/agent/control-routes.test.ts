/**
 * control-routes.ts through app.request, the sub-app mounted alone:
 * shutdown (202 then the power handler), status, and the wait-exit long
 * poll with its timeout parsing and cap.
 */
import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { API_PREFIX, type JobExit } from "../../lib/agent-protocol.ts";
import { type ControlRouteDeps, controlRoutes, parseWaitTimeout } from "./control-routes.ts";
import { type AgentHono, answerError, noSuchEndpoint } from "./http.ts";

function mount(d: Partial<ControlRouteDeps> = {}) {
  const app = new Hono<AgentHono>();
  app.use(async (c, next) => {
    c.set("ip", "fd00::1");
    await next();
  });
  app.route(API_PREFIX, controlRoutes({ maxWaitMs: 60_000, log: () => {}, ...d }));
  app.notFound(noSuchEndpoint);
  app.onError(answerError(() => {}));
  return app;
}
const errorOf = async (r: Response) => ((await r.json()) as { error: string }).error;

describe("parseWaitTimeout", () => {
  test("default 30 s; a non-negative integer is taken as is", () => {
    expect(parseWaitTimeout(null)).toBe(30_000);
    expect(parseWaitTimeout("")).toBe(30_000);
    expect(parseWaitTimeout("0")).toBe(0);
    expect(parseWaitTimeout("1500")).toBe(1500);
  });
  test("anything else is agent error 400 quoting the value", () => {
    for (const t of ["-5", "abc", "1.5"]) {
      expect(() => parseWaitTimeout(t)).toThrow(
        expect.objectContaining({ code: "agent.bad-request", detail: { status: 400 } }),
      );
      expect(() => parseWaitTimeout(t)).toThrow(
        `timeout_ms must be a non-negative integer (got "${t}")`,
      );
    }
  });
});

describe("shutdown", () => {
  test("answers 202 with the kind, then calls the power handler", async () => {
    let called!: (x: string) => void;
    const power = new Promise<string>((r) => {
      called = r;
    });
    const app = mount({ power: (kind, reason) => called(`${kind}: ${reason}`) });
    const r = await app.request("/agent/v1/shutdown", {
      method: "POST",
      body: '{"kind":"reboot"}',
    });
    expect(r.status).toBe(202);
    expect(await r.json()).toEqual({ ok: true, kind: "reboot" });
    expect(await power).toBe("reboot: agent request from fd00::1");
  });

  test("an empty body means poweroff", async () => {
    const r = await mount({ power: () => {} }).request("/agent/v1/shutdown", { method: "POST" });
    expect(r.status).toBe(202);
    expect(await r.json()).toEqual({ ok: true, kind: "poweroff" });
  });

  test("a bad kind 400, an oversized body 413, no power handler 501, GET 405", async () => {
    const app = mount({ power: () => {} });
    let r = await app.request("/agent/v1/shutdown", { method: "POST", body: '{"kind":"halt"}' });
    expect(r.status).toBe(400);
    expect(await errorOf(r)).toContain("poweroff");
    r = await app.request("/agent/v1/shutdown", { method: "POST", body: " ".repeat(4097) });
    expect(r.status).toBe(413);
    r = await mount().request("/agent/v1/shutdown", { method: "POST", body: "{}" });
    expect(r.status).toBe(501);
    expect(await errorOf(r)).toBe("this agent cannot power off (no power handler)");
    r = await app.request("/agent/v1/shutdown");
    expect(r.status).toBe(405);
    expect(r.headers.get("allow")).toBe("POST");
    expect(await errorOf(r)).toBe("shutdown: use POST");
  });
});

describe("status", () => {
  test("what the status callback gives, {} without one", async () => {
    let r = await mount({ status: async () => ({ services: ["a"] }) }).request("/agent/v1/status");
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ services: ["a"] });
    r = await mount().request("/agent/v1/status");
    expect(await r.json()).toEqual({});
  });

  test("anything but GET, HEAD included, is 405", async () => {
    for (const method of ["POST", "HEAD"]) {
      const r = await mount().request("/agent/v1/status", { method });
      expect(r.status).toBe(405);
      expect(r.headers.get("allow")).toBe("GET");
    }
  });
});

describe("wait-exit", () => {
  const never = () => new Promise<JobExit>(() => {});

  test("200 with the job's exit once it has ended", async () => {
    const r = await mount({ jobExit: () => ({ code: 3, message: "job failed" }) }).request(
      "/agent/v1/wait-exit?timeout_ms=60000",
    );
    expect(r.status).toBe(200);
    expect(await r.json()).toEqual({ code: 3, message: "job failed" });
  });

  test("204 when the job is still running at the timeout, and maxWaitMs caps the timeout", async () => {
    let r = await mount({ jobExit: never }).request("/agent/v1/wait-exit?timeout_ms=1");
    expect(r.status).toBe(204);
    expect(await r.text()).toBe("");
    // A ten-minute request ends at once under a 1 ms cap (else this test times out).
    r = await mount({ jobExit: never, maxWaitMs: 1 }).request(
      "/agent/v1/wait-exit?timeout_ms=600000",
    );
    expect(r.status).toBe(204);
  });

  test("404 without a job, 400 for a bad timeout, 405 for other methods", async () => {
    let r = await mount().request("/agent/v1/wait-exit");
    expect(r.status).toBe(404);
    expect(await errorOf(r)).toBe("this VM runs no job");
    r = await mount({ jobExit: () => null }).request("/agent/v1/wait-exit?timeout_ms=1000");
    expect(r.status).toBe(404);
    r = await mount({ jobExit: never }).request("/agent/v1/wait-exit?timeout_ms=-5");
    expect(r.status).toBe(400);
    for (const method of ["POST", "HEAD"]) {
      r = await mount({ jobExit: never }).request("/agent/v1/wait-exit", { method });
      expect(r.status).toBe(405);
    }
  });
});
