/**
 * The HTTP app served on :9999 (Hono). Runtime-free: the client address comes
 * from `c.env.requestIP` (Bun's server in production, a stub in tests), so it
 * is tested with `app.request` without opening a port.
 */
import { Hono } from "hono";
import { isAllowedClient, parseCidrs } from "../../lib/net-acl.ts";
import { VERSION } from "../../lib/version.ts";

/** What the server passes as `env`: Bun's server, or a test stub. */
export interface UiEnv {
  requestIP(req: Request): { address: string } | null;
}

/** Read-only facts the app shows; functions so they are always current. */
export interface UiDeps {
  hostname(): string;
  uptime(): number;
  /** Extra client CIDRs allowed besides loopback and mycelium. */
  allow: readonly string[];
  /** mycelium's state and address (null when the VM has no [mycelium]). */
  mycelium?: () => unknown;
}

/** Builds the app. Every request from a non-allowed source gets 403. */
export function createApp(deps: UiDeps) {
  const extra = parseCidrs(deps.allow);
  const app = new Hono<{ Bindings: UiEnv }>();
  app.use("*", async (c, next) => {
    const ip = c.env?.requestIP?.(c.req.raw)?.address;
    if (!isAllowedClient(ip, extra)) {
      return c.json(
        { error: "forbidden", reason: `client ${ip ?? "unknown"} is not allowed` },
        403,
      );
    }
    await next();
  });
  app.get("/health", (c) =>
    c.json({
      status: "ok",
      version: VERSION,
      hostname: deps.hostname(),
      uptime: deps.uptime(),
      mycelium: deps.mycelium?.() ?? null,
    }),
  );
  app.notFound((c) => c.json({ error: "not found" }, 404));
  app.onError((err, c) => c.json({ error: "internal error", reason: err.message }, 500));
  return app;
}
