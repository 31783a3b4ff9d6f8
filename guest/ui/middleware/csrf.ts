/**
 * CSRF: every POST carries the session's token (form field `csrf` or header
 * X-CSRF-Token) and, when the browser sends one, an Origin equal to the
 * page's own (`Origin: null`, an opaque origin, is refused). Login has no
 * session yet: its POSTs are checked for Origin only.
 */
import { createMiddleware } from "hono/factory";
import { safeEqual } from "../auth.ts";
import type { Responder, UiApp } from "../http.ts";

/** The POSTs made before a session exists. */
const LOGIN_PATHS = new Set(["/login", "/api/v1/login"]);

/** The CSRF check of POSTs (other methods pass: no route acts on them). */
export function csrf(ui: Responder) {
  return createMiddleware<UiApp>(async (c, next) => {
    if (c.req.method !== "POST") return next();
    const origin = c.req.header("origin");
    if (origin && origin !== "null" && origin !== new URL(c.req.url).origin)
      return ui.refuse(c, 403, `cross-origin request from ${origin} refused`);
    if (origin === "null") return ui.refuse(c, 403, "request from an opaque origin refused");
    if (LOGIN_PATHS.has(c.req.path)) return next();
    const s = c.get("session");
    if (!s) return ui.refuse(c, 401, "log in first");
    let token = c.req.header("x-csrf-token");
    if (
      !token &&
      (c.req.header("content-type") ?? "").includes("application/x-www-form-urlencoded")
    ) {
      const f = await c.req.parseBody();
      token = typeof f.csrf === "string" ? f.csrf : undefined;
    }
    if (!token || !safeEqual(token, s.csrf))
      return ui.refuse(c, 403, "missing or wrong CSRF token");
    return next();
  });
}
