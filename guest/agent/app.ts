/**
 * The guest agent as one Hono app: the checks every request passes
 * (middleware.ts: source ACL → token → API prefix) in front of three
 * sub-apps under /agent/v1 (exec-routes.ts, files-routes.ts,
 * control-routes.ts). Runtime-free: Bun's server is reached only through
 * `c.env`, so the whole app is tested with `app.request`; server.ts adapts
 * it to Bun.serve. The error handler turns every exception into a JSON
 * answer: this code runs inside PID 1, where nothing may escape.
 */
import { Hono } from "hono";
import { API_PREFIX } from "../../lib/agent-protocol.ts";
import { type ControlRouteDeps, controlRoutes } from "./control-routes.ts";
import { type ExecRouteDeps, execRoutes } from "./exec-routes.ts";
import { type FileRouteDeps, fileRoutes } from "./files-routes.ts";
import { type AgentHono, answerError, noSuchEndpoint } from "./http.ts";
import { apiOnly, sourceAcl, tokenAuth } from "./middleware.ts";

/** Everything the app needs, defaults resolved (server.ts resolveOptions). */
export interface AgentAppDeps extends ExecRouteDeps, FileRouteDeps, ControlRouteDeps {
  /** The per-VM token, trimmed and non-empty. */
  token: string;
  /** May this client address talk to the agent? */
  allow: (ip: string) => boolean;
}

/** The agent's Hono app; `fetch(req, env)` with env from Bun's server (or a stub). */
export function createAgentApp(d: AgentAppDeps): Hono<AgentHono> {
  // Routes match the raw path (no percent-decoding), as the agent always has.
  const app = new Hono<AgentHono>({ getPath: (req) => new URL(req.url).pathname });
  app.use("*", sourceAcl(d.allow, d.log), tokenAuth(d.token, d.log), apiOnly());
  app.route(API_PREFIX, execRoutes(d));
  app.route(API_PREFIX, fileRoutes(d));
  app.route(API_PREFIX, controlRoutes(d));
  app.notFound(noSuchEndpoint);
  app.onError(answerError(d.log));
  return app;
}
