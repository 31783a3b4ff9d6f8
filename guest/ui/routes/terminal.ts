/**
 * The debug terminal's page and WebSocket upgrade: only when vm.toml enables
 * it (404 otherwise), admins only, and the upgrade only with a same-origin
 * Origin and the session's CSRF token in the URL (a browser sends no custom
 * header on a WebSocket). The shell itself is ../terminal.ts.
 *
 * Scope ([ui] terminal_allow, seed 001: "root ttyd … mycelium only", "which
 * mycelium nodes can connect as debugger"): besides the admin session, the
 * client must be loopback or inside one of the listed addresses or subnets;
 * the rest of the UI's allowed clients (all of 400::/7, [ui] allow) are
 * refused here with 403.
 */
import { Hono } from "hono";
import { isListedClient, isLoopbackClient, parseCidrs } from "../../../lib/net-acl.ts";
import { safeEqual } from "../auth.ts";
import type { Answer, C, Responder, UiApp } from "../http.ts";
import { terminalPage } from "../pages.ts";
import type { Terminals } from "../terminal.ts";

/** Pure: the terminal size asked for in the URL, clamped (80×24 when absent or not a number). */
export function terminalSize(cols: unknown, rows: unknown): { cols: number; rows: number } {
  return {
    cols: Math.min(1000, Math.max(2, Number(cols) || 80)),
    rows: Math.min(500, Math.max(2, Number(rows) || 24)),
  };
}

/** GET /terminal and /terminal/ws; `terminals` absent or null: the terminal is disabled. */
export function terminalRoutes(
  terminals: Terminals | null | undefined,
  ui: Responder,
  allow: readonly string[] = [],
) {
  const app = new Hono<UiApp>();
  const debuggers = parseCidrs(allow);
  const gate = (c: C) => {
    if (!terminals) return ui.refuse(c, 404, "the debug terminal is disabled in this VM's config");
    const ip = c.get("ip");
    if (!isLoopbackClient(ip) && !isListedClient(ip, debuggers))
      return ui.refuse(
        c,
        403,
        `client ${ip ?? "unknown"} may not open the debug terminal (not loopback, not in [ui] terminal_allow)`,
      );
    return ui.needAdmin(c);
  };
  app.get("/terminal", (c) => gate(c) ?? c.html(terminalPage(ui.viewer(c))));
  app.get("/terminal/ws", (c) => gate(c) ?? upgrade(c, terminals as Terminals, ui));
  return app;
}

/** The upgrade of an admin's request: same Origin, the CSRF token, a free session slot. */
function upgrade(c: C, terminals: Terminals, ui: Responder): Answer {
  const origin = c.req.header("origin");
  if (!origin || origin !== new URL(c.req.url).origin)
    return ui.refuse(c, 403, "the terminal needs a same-origin WebSocket");
  const s = c.get("session");
  const token = c.req.query("csrf");
  if (!s || !token || !safeEqual(token, s.csrf))
    return ui.refuse(c, 403, "missing or wrong CSRF token");
  if (!terminals.canOpen()) return ui.refuse(c, 503, `at most ${terminals.max} terminal sessions`);
  const size = terminalSize(c.req.query("cols"), c.req.query("rows"));
  const ok = c.env.upgrade?.(c.req.raw, { data: { kind: "terminal", ip: c.get("ip"), ...size } });
  if (!ok) return ui.refuse(c, 400, "expected a WebSocket upgrade");
  return new Response(null);
}
