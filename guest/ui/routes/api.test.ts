import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { fakeSource } from "../../../test/helpers/fake-ui-source.ts";
import type { Session } from "../auth.ts";
import { createResponder, type UiApp } from "../http.ts";
import { apiRoutes } from "./api.ts";

/** The API reads as seen by a client with `session` (or loopback read-only without one). */
function app(session: Session | null = null) {
  const f = fakeSource();
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "127.0.0.1");
    c.set("session", session);
    c.set("role", session?.role ?? "readonly");
    await next();
  });
  a.route("/", apiRoutes(f.source, createResponder({ terminal: false })));
  return { a, ...f };
}

const json = async (a: Hono<UiApp>, path: string) => {
  const res = await a.request(path);
  return { status: res.status, body: await res.json() };
};

describe("API reads", () => {
  test("the session: role and CSRF token (none without a session)", async () => {
    expect((await json(app().a, "/api/v1/session")).body).toEqual({ role: "readonly", csrf: null });
    const s: Session = { id: "i", role: "admin", csrf: "t".repeat(64), ip: "::1", expires: 1e15 };
    expect((await json(app(s).a, "/api/v1/session")).body).toEqual({
      role: "admin",
      csrf: "t".repeat(64),
    });
  });

  test("overview, services, one service, updates and the boot log are the source's", async () => {
    const { a, source } = app();
    expect((await json(a, "/api/v1/overview")).body).toEqual(source.overview());
    expect((await json(a, "/api/v1/services")).body).toEqual(source.services());
    expect((await json(a, "/api/v1/services/web")).body).toEqual(source.service("web"));
    const odd = encodeURIComponent("<script>alert(1)</script>");
    expect((await json(a, `/api/v1/services/${odd}`)).body).toMatchObject({
      name: "<script>alert(1)</script>",
    });
    expect((await json(a, "/api/v1/updates")).body).toEqual(source.updates());
    expect((await json(a, "/api/v1/boot-log")).body).toEqual(["[0.1] boot: <mounts>"]);
  });

  test("an unknown service is a JSON 404 naming it", async () => {
    expect(await json(app().a, "/api/v1/services/nope")).toEqual({
      status: 404,
      body: { error: 'no service "nope"' },
    });
  });
});
