/**
 * The status UI and its JSON API on :9999 (Hono), composed of the parts in
 * middleware/ and routes/. Runtime-free: the client address and the
 * WebSocket upgrade come from `c.env` (Bun's server in production, a stub in
 * tests), so the app and each part are tested with `app.request`.
 *
 * Order of checks on every request (the order of registration below):
 * security headers on every answer → source address (loopback, mycelium,
 * configured CIDRs; else 403) → session/role (no password configured:
 * read-only on loopback only) → body size → CSRF token and Origin on every
 * POST → role for everything but /health, assets and login → role for
 * actions (admin, in each route). See docs/api.md.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createLoginLimiter, createSessions, type LoginLimiter, type Sessions } from "./auth.ts";
import { createResponder, type UiApp } from "./http.ts";
import { internalError } from "./internal-error.ts";
import { csrf } from "./middleware/csrf.ts";
import { securityHeaders } from "./middleware/headers.ts";
import { requireRole, sessionRole } from "./middleware/session.ts";
import { sourceAcl } from "./middleware/source-acl.ts";
import { actionRoutes } from "./routes/actions.ts";
import { apiRoutes } from "./routes/api.ts";
import type { HealthDeps } from "./routes/health.ts";
import { loginRoutes } from "./routes/login.ts";
import { type LogOptions, logRoutes } from "./routes/logs.ts";
import { pageRoutes } from "./routes/pages.ts";
import { publicRoutes } from "./routes/public.ts";
import { terminalRoutes } from "./routes/terminal.ts";
import { updateRoutes } from "./routes/updates.ts";
import type { UiSource } from "./source.ts";
import type { Terminals } from "./terminal.ts";

export type { UiEnv } from "./http.ts";

/** What the app needs (the log clients' limits: see LogOptions). */
export interface UiDeps extends HealthDeps, LogOptions {
  /** Extra client CIDRs allowed besides loopback and mycelium. */
  allow: readonly string[];
  /** The data and actions; without it only /health and the assets exist. */
  source?: UiSource;
  /** Bun.password hashes from vm.toml [ui]. */
  passwordHash?: string;
  readonlyPasswordHash?: string;
  /** The debug terminal manager; absent = disabled. */
  terminals?: Terminals | null;
  /** Who may open the terminal besides loopback ([ui] terminal_allow); default none. */
  terminalAllow?: readonly string[];
  sessions?: Sessions;
  limiter?: LoginLimiter;
}

/** Most bytes of a request body. */
const MAX_BODY = 64 * 1024;

/** Builds the app. */
export function createApp(deps: UiDeps) {
  const sessions = deps.sessions ?? createSessions();
  const hasPassword = Boolean(deps.passwordHash);
  const ui = createResponder({ terminal: Boolean(deps.terminals) });
  const app = new Hono<UiApp>();
  app.use(securityHeaders(), sourceAcl(deps.allow), sessionRole(sessions, hasPassword));
  app.use(
    bodyLimit({
      maxSize: MAX_BODY,
      onError: (c) => c.json({ error: "request body too large (64 KiB max)" }, 413),
    }),
  );
  app.route("/", publicRoutes(deps));

  const source = deps.source;
  if (!source) {
    app.notFound((c) => c.json({ error: "not found" }, 404));
    return app;
  }
  app.use(csrf(ui));
  app.route(
    "/",
    loginRoutes({
      ui,
      sessions,
      limiter: deps.limiter ?? createLoginLimiter(),
      passwordHash: deps.passwordHash,
      readonlyPasswordHash: deps.readonlyPasswordHash,
    }),
  );
  // Everything below needs a role.
  app.use(requireRole(ui, hasPassword));
  app.route("/", apiRoutes(source, ui));
  app.route("/", logRoutes(source, ui, deps));
  app.route("/", actionRoutes(source, ui));
  app.route("/", updateRoutes(source, ui));
  app.route("/", pageRoutes(source, ui));
  app.route("/", terminalRoutes(deps.terminals, ui, deps.terminalAllow ?? []));
  app.notFound(ui.notFound);
  app.onError(internalError);
  return app;
}
