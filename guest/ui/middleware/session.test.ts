import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { createSessions, SESSION_COOKIE } from "../auth.ts";
import { createResponder, NO_PASSWORD, type UiApp, type UiEnv } from "../http.ts";
import { requireRole, sessionRole } from "./session.ts";
import { sourceAcl } from "./source-acl.ts";

const from = (address: string): UiEnv => ({ requestIP: () => ({ address }) });
const LOOP = from("127.0.0.1");
const MYC = from("4ab:cd::1");
const ui = createResponder({ terminal: false });

/** An app that answers who it sees: role and session id. */
function whoami(hasPassword: boolean, now = () => 0) {
  const sessions = createSessions({ now, ttlMs: 1000 });
  const a = new Hono<UiApp>();
  a.use(sourceAcl([]), sessionRole(sessions, hasPassword));
  a.get("*", (c) => c.json({ role: c.get("role"), session: c.get("session")?.id ?? null }));
  const cookie = (id: string) => ({ headers: { cookie: `a=b; ${SESSION_COOKIE}=${id}` } });
  return { a, sessions, cookie };
}

describe("session and role", () => {
  test("no password: read-only on loopback, nothing from elsewhere", async () => {
    const { a } = whoami(false);
    expect(await (await a.request("/", {}, LOOP)).json()).toEqual({
      role: "readonly",
      session: null,
    });
    expect(await (await a.request("/", {}, MYC)).json()).toEqual({ role: null, session: null });
  });

  test("a password configured: no role without a session, even on loopback", async () => {
    const { a } = whoami(true);
    expect(await (await a.request("/", {}, LOOP)).json()).toEqual({ role: null, session: null });
  });

  test("a session's cookie gives its role; an unknown or expired one gives none", async () => {
    let t = 0;
    const { a, sessions, cookie } = whoami(true, () => t);
    const ro = sessions.create("readonly", "4ab:cd::1");
    const admin = sessions.create("admin", "4ab:cd::1");
    expect(await (await a.request("/", cookie(ro.id), MYC)).json()).toEqual({
      role: "readonly",
      session: ro.id,
    });
    expect(await (await a.request("/", cookie(admin.id), MYC)).json()).toEqual({
      role: "admin",
      session: admin.id,
    });
    expect(await (await a.request("/", cookie("f".repeat(64)), MYC)).json()).toEqual({
      role: null,
      session: null,
    });
    t = 5000;
    expect(await (await a.request("/", cookie(admin.id), MYC)).json()).toEqual({
      role: null,
      session: null,
    });
  });
});

/** An app whose role is set by the test, then gated. */
function gated(role: "admin" | "readonly" | null, hasPassword: boolean) {
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("role", role);
    c.set("session", null);
    await next();
  });
  a.use(requireRole(ui, hasPassword));
  a.all("*", (c) => c.text("inside"));
  return a;
}

describe("the role gate", () => {
  test("any role passes", async () => {
    for (const role of ["admin", "readonly"] as const)
      expect(await (await gated(role, true).request("/services")).text()).toBe("inside");
  });

  test("no role: a page GET goes to /login; the API and other methods get 401", async () => {
    const a = gated(null, true);
    const page = await a.request("/services");
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/login");
    const api = await a.request("/api/v1/services");
    expect(api.status).toBe(401);
    expect(await api.json()).toEqual({ error: "log in first" });
    const post = await a.request("/services/web/restart", { method: "POST" });
    expect(post.status).toBe(401);
    expect(await post.text()).toContain("log in first");
  });

  test("no role and no password: 403 with the reason, never a login page", async () => {
    const a = gated(null, false);
    for (const path of ["/services", "/api/v1/services"]) {
      const res = await a.request(path);
      expect(res.status).toBe(403);
      expect(await res.text()).toContain(NO_PASSWORD);
    }
  });
});
