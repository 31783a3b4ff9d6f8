import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { Session } from "../auth.ts";
import { createResponder, type UiApp } from "../http.ts";
import { csrf } from "./csrf.ts";

const ui = createResponder({ terminal: false });
const TOKEN = "c".repeat(64);
const session: Session = { id: "s", role: "admin", csrf: TOKEN, ip: "4ab::1", expires: 1e15 };

/** An app with (or without) a session, the CSRF check, and routes that record what got through. */
function app(s: Session | null = session) {
  const passed: string[] = [];
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "4ab::1");
    c.set("session", s);
    c.set("role", s?.role ?? null);
    await next();
  });
  a.use(csrf(ui));
  a.all("*", async (c) => {
    const form = c.req.header("content-type")?.includes("form") ? await c.req.parseBody() : {};
    passed.push(`${c.req.method} ${c.req.path} ${form.note ?? ""}`.trim());
    return c.text("done");
  });
  return { a, passed };
}

const post = (headers: Record<string, string> = {}, body?: string): RequestInit => ({
  method: "POST",
  headers,
  body,
});
const FORM = "application/x-www-form-urlencoded";

describe("CSRF", () => {
  test("GETs are not checked", async () => {
    const { a, passed } = app(null);
    expect((await a.request("/services")).status).toBe(200);
    expect(passed).toEqual(["GET /services"]);
  });

  test("a POST with the token as header or as form field gets through (the form still readable)", async () => {
    const { a, passed } = app();
    expect((await a.request("/api/v1/x", post({ "x-csrf-token": TOKEN }))).status).toBe(200);
    const form = await a.request("/x", post({ "content-type": FORM }, `csrf=${TOKEN}&note=hi`));
    expect(form.status).toBe(200);
    expect(passed).toEqual(["POST /api/v1/x", "POST /x hi"]);
  });

  test("no token, a wrong one, or a token for a JSON body is refused with 403", async () => {
    const { a, passed } = app();
    const answers = [
      await a.request("/api/v1/x", post()),
      await a.request("/api/v1/x", post({ "x-csrf-token": "0".repeat(64) })),
      await a.request("/api/v1/x", post({ "x-csrf-token": TOKEN.slice(1) })),
      await a.request("/x", post({ "content-type": FORM }, "csrf=wrong")),
      await a.request("/x", post({ "content-type": "application/json" }, `{"csrf":"${TOKEN}"}`)),
    ];
    expect(answers.map((r) => r.status)).toEqual([403, 403, 403, 403, 403]);
    expect(await answers[0]?.json()).toEqual({ error: "missing or wrong CSRF token" });
    expect(passed).toEqual([]);
  });

  test("no session: 401, whatever the token", async () => {
    const { a, passed } = app(null);
    const res = await a.request("/api/v1/x", post({ "x-csrf-token": TOKEN }));
    expect(res.status).toBe(401);
    expect(passed).toEqual([]);
  });

  test("another Origin, or an opaque one, is refused even with the token", async () => {
    const { a, passed } = app();
    const evil = await a.request(
      "http://vm1/api/v1/x",
      post({ "x-csrf-token": TOKEN, origin: "http://evil.example" }),
    );
    expect(evil.status).toBe(403);
    expect(await evil.text()).toContain("cross-origin request from http://evil.example refused");
    const opaque = await a.request("http://vm1/x", post({ "x-csrf-token": TOKEN, origin: "null" }));
    expect(opaque.status).toBe(403);
    expect(await opaque.text()).toContain("opaque origin");
    const same = await a.request(
      "http://vm1/x",
      post({ "x-csrf-token": TOKEN, origin: "http://vm1" }),
    );
    expect(same.status).toBe(200);
    expect(passed).toEqual(["POST /x"]);
  });

  test("login needs no session or token, but its Origin is checked", async () => {
    const { a, passed } = app(null);
    expect((await a.request("/login", post())).status).toBe(200);
    expect((await a.request("/api/v1/login", post())).status).toBe(200);
    const evil = await a.request("http://vm1/login", post({ origin: "http://evil.example" }));
    expect(evil.status).toBe(403);
    expect(passed).toEqual(["POST /login", "POST /api/v1/login"]);
  });
});
