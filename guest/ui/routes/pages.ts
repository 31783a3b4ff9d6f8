/** The HTML pages (a role is required; rendering is in ../pages.ts). */
import { Hono } from "hono";
import type { Responder, UiApp } from "../http.ts";
import { overviewPage, servicePage, servicesPage, updatesPage } from "../pages.ts";
import type { UiSource } from "../source.ts";

/** GET /, /services, /services/:name, /updates. */
export function pageRoutes(source: UiSource, ui: Responder) {
  const app = new Hono<UiApp>();
  app.get("/", (c) =>
    c.html(overviewPage(ui.viewer(c), source.overview(), source.services(), source.bootLog())),
  );
  app.get("/services", (c) => c.html(servicesPage(ui.viewer(c), source.services())));
  app.get("/services/:name", (c) => {
    const s = source.service(c.req.param("name"));
    return s
      ? c.html(servicePage(ui.viewer(c), s))
      : ui.refuse(c, 404, `no service "${c.req.param("name")}"`);
  });
  app.get("/updates", (c) => c.html(updatesPage(ui.viewer(c), source.updates())));
  return app;
}
