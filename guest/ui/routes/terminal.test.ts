import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { Role } from "../auth.ts";
import { createResponder, type UiApp, type UiEnv } from "../http.ts";
import { createTerminals, type TerminalData, type Terminals } from "../terminal.ts";
import { terminalRoutes, terminalSize } from "./terminal.ts";

const TOKEN = "t".repeat(64);

/**
 * The terminal routes for `role` (a terminal manager unless `o.terminals` is
 * given, even as undefined); upgrades are recorded and succeed unless `o.upgrade` is false.
 */
function app(role: Role, o: { terminals?: Terminals | null; upgrade?: boolean } = {}) {
  const terminals = "terminals" in o ? o.terminals : createTerminals();
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "4ab:cd::1");
    c.set("session", { id: "i", role, csrf: TOKEN, ip: "4ab:cd::1", expires: 1e15 });
    c.set("role", role);
    await next();
  });
  a.route(
    "/",
    terminalRoutes(terminals, createResponder({ terminal: Boolean(terminals) }), ["4ab:cd::1"]),
  );
  const upgrades: TerminalData[] = [];
  const env: UiEnv = {
    requestIP: () => ({ address: "4ab:cd::1" }),
    upgrade: (_req, u) => {
      upgrades.push(u.data);
      return o.upgrade ?? true;
    },
  };
  const ws = (q: string, origin: string | null = "http://vm1") =>
    a.request(`http://vm1/terminal/ws${q}`, { headers: origin ? { origin } : {} }, env);
  return { a, ws, upgrades };
}

describe("terminal size", () => {
  test("clamped to 2…1000 × 2…500; 80×24 when absent or not a number", () => {
    expect(terminalSize("120", "40")).toEqual({ cols: 120, rows: 40 });
    expect(terminalSize(undefined, undefined)).toEqual({ cols: 80, rows: 24 });
    expect(terminalSize("x", "")).toEqual({ cols: 80, rows: 24 });
    expect(terminalSize("1", "-5")).toEqual({ cols: 2, rows: 2 });
    expect(terminalSize("99999", "99999")).toEqual({ cols: 1000, rows: 500 });
  });
});

describe("terminal routes", () => {
  test("disabled (no manager): 404 on the page and the socket, even for an admin", async () => {
    for (const terminals of [null, undefined]) {
      const { a, ws, upgrades } = app("admin", { terminals });
      const page = await a.request("/terminal");
      expect(page.status).toBe(404);
      expect(await page.text()).toContain("the debug terminal is disabled");
      expect((await ws(`?csrf=${TOKEN}`)).status).toBe(404);
      expect(upgrades).toEqual([]);
    }
  });

  test("read-only: 403 on the page and the socket", async () => {
    const { a, ws, upgrades } = app("readonly");
    expect((await a.request("/terminal")).status).toBe(403);
    expect((await ws(`?csrf=${TOKEN}`)).status).toBe(403);
    expect(upgrades).toEqual([]);
  });

  test("admin: the page; the socket only with the same Origin and the token", async () => {
    const { a, ws, upgrades } = app("admin");
    const page = await a.request("/terminal");
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`data-csrf="${TOKEN}"`);
    expect((await ws(`?csrf=${TOKEN}`, null)).status).toBe(403);
    expect((await ws(`?csrf=${TOKEN}`, "http://evil.example")).status).toBe(403);
    expect((await ws("", "http://vm1")).status).toBe(403);
    expect((await ws("?csrf=bad", "http://vm1")).status).toBe(403);
    expect(upgrades).toEqual([]);
    expect((await ws(`?csrf=${TOKEN}&cols=100&rows=9999`)).status).toBe(200);
    expect(upgrades).toEqual([{ kind: "terminal", ip: "4ab:cd::1", cols: 100, rows: 500 }]);
  });

  test("no free session: 503; a request that is not an upgrade: 400", async () => {
    const full = { ...createTerminals(), canOpen: () => false, max: 4 };
    expect((await app("admin", { terminals: full }).ws(`?csrf=${TOKEN}`)).status).toBe(503);
    const plain = await app("admin", { upgrade: false }).ws(`?csrf=${TOKEN}`);
    expect(plain.status).toBe(400);
    expect(await plain.text()).toContain("expected a WebSocket upgrade");
  });
});
