/**
 * HTTP plumbing shared by the agent's sub-apps (middleware.ts, exec-routes.ts,
 * files-routes.ts, control-routes.ts): the Hono type, the JSON error answer
 * every failure uses (`{"error": "..."}`, the wire contract of docs/agent.md),
 * the app's 404 and error handlers (an "agent.*" error, lib/agent-protocol.ts
 * agentError, answers with its HTTP status), the request body limit, and the
 * HEAD guard. Runtime-free: Bun's server reaches the app only through
 * `c.env` (AgentEnv), so every route is tested with `app.request`.
 */
import type { Context, ErrorHandler, Handler, MiddlewareHandler, NotFoundHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { isHeroError } from "../../lib/errors.ts";
import type { ExecWsData } from "./exec.ts";

/** What the app gets as `env`: Bun's server (server.ts wraps it), or a test stub. */
export interface AgentEnv {
  /** The client's address; absent or null: unknown (the source policy decides on ""). */
  requestIP?(req: Request): { address: string } | null;
  /** Bun's WebSocket upgrade; absent outside Bun.serve. */
  upgrade?(req: Request, opts: { data: ExecWsData }): boolean;
  /** Bun's per-request idle timeout (0: none). */
  timeout?(req: Request, seconds: number): void;
}

/** The Hono environment of every agent (sub-)app. */
export type AgentHono = {
  Bindings: AgentEnv;
  /** `ip`: the client address, set by the source ACL (middleware.ts). */
  Variables: { ip: string };
};

/** A log sink; messages never contain the token or file contents. */
export type AgentLog = (level: "info" | "warn", msg: string) => void;

/** The agent's error answer: JSON `{error}` with `status` (and extra headers such as `allow`). */
export function fail(
  c: Context,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): Response {
  return c.json({ error: message }, status as ContentfulStatusCode, headers);
}

/** A 405 handler naming the methods an endpoint takes. */
export function methodNotAllowed(message: string, allow: string): Handler<AgentHono> {
  return (c) => fail(c, 405, message, { allow });
}

/** Answers with the app's 404 ("no such endpoint"). */
export const notFound: Handler<AgentHono> = (c) => c.notFound();

/** The app's 404: JSON naming the method and the raw path. */
export const noSuchEndpoint: NotFoundHandler<AgentHono> = (c) =>
  fail(c, 404, `no such endpoint: ${c.req.method} ${new URL(c.req.url).pathname}`);

/**
 * The app's error handler: an "agent.*" error answers with its status and
 * message; anything else is a logged 500 naming the error.
 */
export function answerError(log: AgentLog): ErrorHandler<AgentHono> {
  return (e, c) => {
    if (isHeroError(e, "agent")) return fail(c, e.detail.status ?? 500, e.message);
    const msg = (e as Error)?.message ?? String(e);
    log("warn", `internal error: ${msg}`);
    return fail(c, 500, `internal error: ${msg}`);
  };
}

/**
 * Hono serves HEAD with a GET route. Only GET files ever answered HEAD; on
 * the other GET endpoints a HEAD request gets what any other wrong method
 * gets (`otherwise`), as it always has.
 */
export function noHead(otherwise: Handler<AgentHono>): MiddlewareHandler<AgentHono> {
  return async (c, next) => {
    if (c.req.method === "HEAD") return otherwise(c, next);
    await next();
  };
}

/** Refuses a request body over `max` bytes with 413 (declared Content-Length or counted while reading). */
export function bodyMax(max: number): MiddlewareHandler<AgentHono> {
  return bodyLimit({
    maxSize: max,
    onError: (c) => fail(c, 413, `request body too large (limit ${max} bytes)`),
  });
}

/** The query of a request, decoded as URLSearchParams does (the wire contract). */
export function queryOf(c: Context): URLSearchParams {
  return new URL(c.req.url).searchParams;
}

/** A log sink that never throws: a broken sink must not break a request. */
export function safeLog(sink: AgentLog | undefined): AgentLog {
  return (level, msg) => {
    try {
      sink?.(level, msg);
    } catch {
      // ignored
    }
  };
}
