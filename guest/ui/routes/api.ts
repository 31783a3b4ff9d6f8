/** The JSON API's reads (a role is required; actions are in actions.ts and updates.ts). */
import { Hono } from "hono";
import type { Responder, UiApp } from "../http.ts";
import type { UiSource } from "../source.ts";

/** GET /api/v1/{session, overview, identity, services, services/:name, updates, boot-log}. */
export function apiRoutes(source: UiSource, ui: Responder) {
  const app = new Hono<UiApp>();
  app.get("/api/v1/session", (c) =>
    c.json({ role: c.get("role"), csrf: c.get("session")?.csrf ?? null }),
  );
  app.get("/api/v1/overview", (c) => c.json(source.overview()));
  // The machine's [identity] (null when not configured): farmer id, farming pool, registrars, description.
  app.get("/api/v1/identity", (c) => c.json(source.overview().identity ?? null));
  app.get("/api/v1/services", (c) => c.json(source.services()));
  app.get("/api/v1/services/:name", (c) => {
    const s = source.service(c.req.param("name"));
    return s ? c.json(s) : ui.refuse(c, 404, `no service "${c.req.param("name")}"`);
  });
  app.get("/api/v1/updates", (c) => c.json(source.updates()));
  app.get("/api/v1/boot-log", (c) => c.json(source.bootLog()));
  return app;
}
