/**
 * What every part of the UI app shares (app.ts composes the parts): the
 * request's environment and variables, and how a refusal is answered (JSON
 * under /api/, else an HTML page), so that the middleware and the route
 * modules answer alike.
 */
import type { Context } from "hono";
import type { Role, Session } from "./auth.ts";
import { errorPage, type Viewer } from "./pages.ts";
import type { TerminalData } from "./terminal.ts";

/** What the server passes as `env`: Bun's server, or a test stub. */
export interface UiEnv {
  requestIP(req: Request): { address: string } | null;
  upgrade?(req: Request, opts: { data: TerminalData }): boolean;
  /** Bun: the idle timeout of one request's connection (a dropped log client is closed soon). */
  timeout?(req: Request, seconds: number): void;
}

/** Set by the middleware for the routes: the client address, its session and its role. */
export interface UiVars {
  ip: string;
  session: Session | null;
  role: Role | null;
}

/** The Hono environment of the UI app and of each of its parts. */
export type UiApp = { Bindings: UiEnv; Variables: UiVars };

/** A request's context in the UI app. */
export type C = Context<UiApp>;

/** A handler's answer (c.html may be a promise). */
export type Answer = Response | Promise<Response>;

/** The statuses a refusal may have. */
export type RefuseStatus = 400 | 401 | 403 | 404 | 429 | 501 | 503;

/** The refusal of every request that needs a password when none is configured. */
export const NO_PASSWORD = "no UI password is configured: the UI is read-only on loopback only";

/** Whether a request is for the JSON API (its answers are JSON, never pages). */
export const isApi = (c: C): boolean => c.req.path.startsWith("/api/");

/** How the app answers: pages see the viewer; refusals are JSON or a page. */
export function createResponder(o: { terminal: boolean }) {
  const viewer = (c: C): Viewer => ({
    role: c.get("role") as Role,
    csrf: c.get("session")?.csrf ?? null,
    loggedIn: c.get("session") !== null,
    terminal: o.terminal,
  });
  const refuse = (c: C, status: RefuseStatus, message: string): Answer =>
    isApi(c)
      ? c.json({ error: message }, status)
      : c.html(errorPage(c.get("role") ? viewer(c) : null, String(status), message), status);
  return {
    viewer,
    refuse,
    /** null for an admin, else the 403 to answer. */
    needAdmin: (c: C): Answer | null =>
      c.get("role") === "admin" ? null : refuse(c, 403, "this needs the admin role"),
    /** No route: JSON for the API and for clients without a role, else a page. */
    notFound: (c: C): Answer =>
      isApi(c) || !c.get("role")
        ? c.json({ error: "not found" }, 404)
        : c.html(errorPage(viewer(c), "404", "not found"), 404),
  };
}

/** The responder the parts of one app share. */
export type Responder = ReturnType<typeof createResponder>;
