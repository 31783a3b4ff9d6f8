/**
 * What any allowed client may fetch without a role: /health (for probes and
 * the host) and the embedded assets (no CDN: the UI works offline).
 */
import { Hono } from "hono";
import { ASSETS } from "../assets.ts";
import type { C, UiApp } from "../http.ts";
import { type HealthDeps, healthReport } from "./health.ts";

/** /health and /assets/*. */
export function publicRoutes(deps: HealthDeps) {
  const app = new Hono<UiApp>();
  app.get("/health", (c) => c.json(healthReport(deps)));
  const asset = (body: string, type: string) => (c: C) =>
    c.body(body, 200, { "Content-Type": type, "Cache-Control": "public, max-age=3600" });
  app.get("/assets/app.css", asset(ASSETS.appCss, "text/css; charset=utf-8"));
  app.get("/assets/app.js", asset(ASSETS.appJs, "text/javascript; charset=utf-8"));
  app.get("/assets/xterm.css", asset(ASSETS.xtermCss, "text/css; charset=utf-8"));
  app.get("/assets/xterm.js", asset(ASSETS.xtermJs, "text/javascript; charset=utf-8"));
  return app;
}
