import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { fakeSource } from "../../../test/helpers/fake-ui-source.ts";
import type { Role } from "../auth.ts";
import { createResponder, type UiApp } from "../http.ts";
import { actionRoutes, isAction, validSignal } from "./actions.ts";

/** The action routes for a client of `role` (the CSRF check is the middleware's, not here). */
function app(role: Role) {
  const f = fakeSource();
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "4ab:cd::1");
    c.set("session", { id: "i", role, csrf: "t", ip: "4ab:cd::1", expires: 1e15 });
    c.set("role", role);
    await next();
  });
  a.route("/", actionRoutes(f.source, createResponder({ terminal: false })));
  return { a, ...f };
}

const api = (signal?: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json" },
  body: signal === undefined ? undefined : JSON.stringify({ signal }),
});
const form = (body: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body,
});

describe("action checks", () => {
  test("the four actions; signals are short upper-case names only", () => {
    for (const a of ["start", "stop", "restart", "kill"]) expect(isAction(a)).toBe(true);
    for (const a of ["explode", "Start", "", "constructor"]) expect(isAction(a)).toBe(false);
    for (const s of ["SIGTERM", "TERM", "SIGUSR1", "HUP", "KILL"])
      expect(validSignal(s)).toBe(true);
    for (const s of ["9", "sigterm", "; rm -rf /", "SIGTERM ", "SIGVERYLONGNAME1", ""])
      expect(validSignal(s)).toBe(false);
  });
});

describe("action routes", () => {
  test("an admin's API action reaches the source and answers the service", async () => {
    const { a, calls, source } = app("admin");
    const res = await a.request("/api/v1/services/web/kill", api("SIGUSR1"));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual(source.service("web") as object);
    expect((await a.request("/api/v1/services/web/stop", api())).status).toBe(200);
    expect(calls).toEqual([
      ["web", "kill", "SIGUSR1"],
      ["web", "stop", undefined],
    ]);
  });

  test("a form action redirects to `back` when it is a path here, else to /services", async () => {
    const { a, calls } = app("admin");
    const here = await a.request("/services/web/restart", form("back=%2Fservices%2Fweb"));
    expect(here.status).toBe(303);
    expect(here.headers.get("location")).toBe("/services/web");
    const away = await a.request("/services/web/start", form("back=%2F%2Fevil.example"));
    expect(away.headers.get("location")).toBe("/services");
    expect(calls).toEqual([
      ["web", "restart", undefined],
      ["web", "start", undefined],
    ]);
  });

  test("read-only: 403 and nothing done", async () => {
    const { a, calls } = app("readonly");
    const res = await a.request("/api/v1/services/web/restart", api());
    expect(res.status).toBe(403);
    expect(await res.json()).toEqual({ error: "this needs the admin role" });
    expect((await a.request("/services/web/restart", form(""))).status).toBe(403);
    expect(calls).toEqual([]);
  });

  test("unknown action 404 (before the service is looked up), unknown service 404, bad signal 400", async () => {
    const { a, calls } = app("admin");
    const answers = async (path: string, init: RequestInit) => {
      const res = await a.request(path, init);
      return [res.status, ((await res.json()) as { error: string }).error];
    };
    expect(await answers("/api/v1/services/nope/explode", api())).toEqual([
      404,
      'unknown action "explode"',
    ]);
    expect(await answers("/api/v1/services/nope/start", api())).toEqual([404, 'no service "nope"']);
    expect(await answers("/api/v1/services/web/kill", api("; rm -rf /"))).toEqual([
      400,
      'invalid signal "; rm -rf /"',
    ]);
    expect(calls).toEqual([]);
  });

  test("a source that refuses the action: 400 with its reason", async () => {
    const { a, source } = app("admin");
    source.action = async () => {
      throw new Error("the service is a oneshot");
    };
    const res = await a.request("/api/v1/services/web/restart", api());
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: "restart web: the service is a oneshot" });
  });
});
