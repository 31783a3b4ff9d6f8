/**
 * Who is asking: the session of the request's cookie and the role it gives
 * (no password configured: read-only on loopback only, see auth.ts roleFor),
 * and the gate in front of every route that needs a role.
 */
import { createMiddleware } from "hono/factory";
import { isLoopbackClient } from "../../../lib/net-acl.ts";
import { cookieValue, roleFor, SESSION_COOKIE, type Sessions } from "../auth.ts";
import { isApi, NO_PASSWORD, type Responder, type UiApp } from "../http.ts";

/** Sets `session` and `role` (after the source ACL, which sets `ip`). */
export function sessionRole(sessions: Sessions, hasPassword: boolean) {
  const policy = { hasPassword };
  return createMiddleware<UiApp>(async (c, next) => {
    const session = sessions.get(cookieValue(c.req.header("cookie"), SESSION_COOKIE));
    c.set("session", session);
    c.set("role", roleFor(policy, session, isLoopbackClient(c.get("ip"))));
    await next();
  });
}

/**
 * Everything registered after this needs a role: without one, a page GET is
 * sent to /login and anything else gets 401 (403 when no password exists,
 * since then no login can help).
 */
export function requireRole(ui: Responder, hasPassword: boolean) {
  return createMiddleware<UiApp>(async (c, next) => {
    if (c.get("role")) return next();
    if (!hasPassword) return ui.refuse(c, 403, NO_PASSWORD);
    if (!isApi(c) && c.req.method === "GET") return c.redirect("/login", 303);
    return ui.refuse(c, 401, "log in first");
  });
}
