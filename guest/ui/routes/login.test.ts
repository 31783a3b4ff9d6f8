import { beforeAll, describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { createLoginLimiter, createSessions, SESSION_COOKIE, type Session } from "../auth.ts";
import { createResponder, NO_PASSWORD, type UiApp } from "../http.ts";
import { type LoginDeps, loginRoutes, passwordRole } from "./login.ts";

const hash = (pw: string) =>
  Bun.password.hash(pw, { algorithm: "argon2id", memoryCost: 1024, timeCost: 1 });
let admin = "";
let ro = "";
let max = "";
let long = "";
const MAX = "m".repeat(1024);
const LONG = "l".repeat(1025);
beforeAll(async () => {
  [admin, ro, max, long] = await Promise.all([
    hash("admin-pw"),
    hash("ro-pw"),
    hash(MAX),
    hash(LONG),
  ]);
});

/** The login routes, with the session the test gives (set as the middleware would). */
function app(o: Partial<LoginDeps> = {}, session: Session | null = null) {
  const sessions = createSessions();
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "4ab:cd::1");
    c.set("session", session);
    c.set("role", session?.role ?? null);
    await next();
  });
  a.route(
    "/",
    loginRoutes({
      ui: createResponder({ terminal: false }),
      sessions,
      limiter: createLoginLimiter(),
      passwordHash: admin,
      readonlyPasswordHash: ro,
      ...o,
    }),
  );
  return { a, sessions };
}

const form = (body: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/x-www-form-urlencoded" },
  body,
});

describe("passwordRole", () => {
  test("admin first, then read-only; anything else none", async () => {
    const hashes = { admin, readonly: ro };
    expect(await passwordRole("admin-pw", hashes)).toBe("admin");
    expect(await passwordRole("ro-pw", hashes)).toBe("readonly");
    expect(await passwordRole("ro-pw", { admin })).toBeNull();
    for (const bad of ["nope", "", 42, null, undefined, ["admin-pw"]])
      expect(await passwordRole(bad, hashes)).toBeNull();
    expect(await passwordRole("admin-pw", { admin: "not a hash" })).toBeNull();
  });

  test("a password over 1,024 characters is never accepted, even the right one", async () => {
    expect(await passwordRole(MAX, { admin: max })).toBe("admin");
    expect(await passwordRole(LONG, { admin: long })).toBeNull();
  });
});

describe("login routes", () => {
  test("the form: a page, a wrong password shown on it, the right one a session and a redirect", async () => {
    const { a, sessions } = app();
    const page = await a.request("/login");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('action="/login"');
    const wrong = await a.request("/login", form("password=nope"));
    expect(wrong.status).toBe(401);
    expect(await wrong.text()).toContain("Wrong password.");
    const ok = await a.request("/login", form("password=ro-pw"));
    expect(ok.status).toBe(303);
    expect(ok.headers.get("location")).toBe("/");
    expect(ok.headers.get("set-cookie")).toMatch(
      new RegExp(
        `^${SESSION_COOKIE}=[0-9a-f]{64}; Path=/; HttpOnly; SameSite=Strict; Max-Age=43200$`,
      ),
    );
    expect(sessions.size).toBe(1);
  });

  test("the API: JSON answers; a body that is not JSON is a wrong password", async () => {
    const { a } = app();
    const ok = await a.request("/api/v1/login", {
      method: "POST",
      body: JSON.stringify({ password: "admin-pw" }),
    });
    const body = (await ok.json()) as { role: string; csrf: string };
    expect(body.role).toBe("admin");
    expect(body.csrf).toMatch(/^[0-9a-f]{64}$/);
    const junk = await a.request("/api/v1/login", { method: "POST", body: "{" });
    expect(junk.status).toBe(401);
    expect(await junk.json()).toEqual({ error: "wrong password" });
  });

  test("without a password configured there is no login", async () => {
    const { a, sessions } = app({ passwordHash: undefined });
    for (const res of [
      await a.request("/login"),
      await a.request("/login", form("password=admin-pw")),
      await a.request("/api/v1/login", { method: "POST", body: '{"password":"admin-pw"}' }),
    ]) {
      expect(res.status).toBe(403);
      expect(await res.text()).toContain(NO_PASSWORD);
    }
    expect(sessions.size).toBe(0);
  });

  test("the limiter is asked before the password is checked", async () => {
    const { a } = app({ limiter: { attempt: () => 17, succeed() {}, count: () => 5 } });
    const res = await a.request("/login", form("password=admin-pw"));
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("17");
    expect(await res.text()).toContain("too many failed logins: retry in 17 s");
  });

  test("logout ends the session and clears the cookie (form → /login, API → ok)", async () => {
    for (const [path, status] of [
      ["/logout", 303],
      ["/api/v1/logout", 200],
    ] as const) {
      const sessions = createSessions();
      const s = sessions.create("admin", "4ab:cd::1");
      const { a } = app({ sessions }, s);
      const res = await a.request(path, { method: "POST" });
      expect(res.status).toBe(status);
      if (status === 303) expect(res.headers.get("location")).toBe("/login");
      else expect(await res.json()).toEqual({ ok: true });
      expect(res.headers.get("set-cookie")).toContain(`${SESSION_COOKIE}=; `);
      expect(res.headers.get("set-cookie")).toContain("Max-Age=0");
      expect(sessions.get(s.id)).toBeNull();
    }
  });
});
