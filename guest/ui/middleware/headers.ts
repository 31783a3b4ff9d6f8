/**
 * Security headers on every answer the UI gives: pages, API, refusals, 404s
 * and errors. Outermost middleware, so that nothing answers without them.
 */
import { createMiddleware } from "hono/factory";
import type { UiApp } from "../http.ts";

/** The headers, each set unless the answer already has it (an SSE stream sets Cache-Control). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  // same-origin, not no-referrer: with no-referrer, Chromium sends `Origin: null` on form POSTs.
  "Referrer-Policy": "same-origin",
  "X-Frame-Options": "DENY",
  "Cache-Control": "no-store",
};

/** Adds the security headers to whatever the rest of the app answered. */
export function securityHeaders() {
  return createMiddleware<UiApp>(async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(SECURITY_HEADERS))
      if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  });
}
