/**
 * The UI's front: what answers before the rest of the UI is loaded. Every
 * request gets the security headers and the source ACL here; /health is
 * answered here; everything else goes to `rest`, the full app (app.ts),
 * which PID 1 builds at the first such request (serve.ts, lazyApp). So a
 * probe's /health (deploy_vm waits on it after boot) never waits for the
 * pages, assets and routes to load, and they take no memory until someone
 * opens the UI. The full app applies its own headers and ACL as well: it is
 * safe on its own (tests, `hero-init init`), and a request forwarded to it
 * passes the same checks twice.
 */
import { Hono } from "hono";
import type { UiApp } from "./http.ts";
import { internalError } from "./internal-error.ts";
import { securityHeaders } from "./middleware/headers.ts";
import { sourceAcl } from "./middleware/source-acl.ts";
import { type HealthDeps, healthReport } from "./routes/health.ts";
import type { Fetcher } from "./serve.ts";

/** What the front needs: /health's data and the extra client CIDRs ([ui] allow). */
export interface FrontDeps extends HealthDeps {
  allow: readonly string[];
}

/** The front app over `rest`. */
export function createFront(deps: FrontDeps, rest: Fetcher) {
  const app = new Hono<UiApp>();
  app.use(securityHeaders(), sourceAcl(deps.allow));
  app.get("/health", (c) => c.json(healthReport(deps)));
  // c.env is Bun's server: the full app needs it for the client address and upgrades.
  app.all("*", (c) => rest.fetch(c.req.raw, c.env as unknown as Parameters<Fetcher["fetch"]>[1]));
  app.onError(internalError);
  return app;
}
