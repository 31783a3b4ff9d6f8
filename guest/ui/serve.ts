/**
 * Binds the UI app: loopback at once, plus the addresses the config lists.
 * A bind failure is logged and the others still serve; the UI failing never
 * touches PID 1's other work.
 */
import type { Server, WebSocketHandler } from "bun";
import { describeError, log } from "../../lib/log.ts";
import { memoLoad } from "../../lib/memo-load.ts";
import type { TerminalData } from "./terminal.ts";

/** What serveApp serves: the Hono app, or `lazyApp` standing in for it. */
export interface Fetcher {
  fetch(req: Request, server: Server<TerminalData>): Response | Promise<Response>;
}

/**
 * A Fetcher that builds the real one at the first request (the UI's pages,
 * assets and routes then cost nothing at boot). A failed build answers that
 * request with a 503 naming the error, and the next request tries again.
 */
export function lazyApp(build: () => Promise<Fetcher>, what = "app"): Fetcher {
  const app = memoLoad(async () => {
    const t = performance.now();
    const built = await build();
    log.info(
      "ui",
      `${what} loaded at the first request in ${Math.round(performance.now() - t)} ms`,
    );
    return built;
  });
  return {
    async fetch(req, server) {
      let ready: Fetcher;
      try {
        ready = await app();
      } catch (e) {
        log.error("ui", `cannot load the UI: ${describeError(e)}`);
        const why = e instanceof Error ? e.message : String(e);
        return new Response(`UI unavailable: ${why}\n`, { status: 503 });
      }
      return ready.fetch(req, server);
    },
  };
}

/** A bound listener, so it can be stopped or rebound. */
export interface Listener {
  address: string;
  stop(): void;
}

/**
 * Pure: the addresses to bind. Loopback always; a wildcard in `extra`
 * replaces the loopback of its family (binding both would fail: the
 * wildcard already covers loopback). Duplicates are dropped.
 */
export function bindAddresses(extra: readonly string[]): string[] {
  const all = ["127.0.0.1", "::1", ...extra];
  const out = all.filter((a, i) => all.indexOf(a) === i);
  return out.filter(
    (a) => !(a === "127.0.0.1" && out.includes("0.0.0.0")) && !(a === "::1" && out.includes("::")),
  );
}

/** Starts one Bun server per address; returns those that bound. */
export function serveApp(
  app: Fetcher,
  addresses: readonly string[],
  port: number,
  websocket?: WebSocketHandler<TerminalData>,
): Listener[] {
  const out: Listener[] = [];
  for (const hostname of addresses) {
    try {
      const server = Bun.serve({
        hostname,
        port,
        // SSE log streams stay open for long; Bun's default would cut them at 10 s.
        idleTimeout: 255,
        maxRequestBodySize: 1024 * 1024,
        fetch: (req, srv) => app.fetch(req, srv),
        // Without a terminal manager no upgrade is ever made; Bun still wants a handler.
        websocket: websocket ?? { message() {} },
        error: (err) => new Response(`internal error: ${err.message}`, { status: 500 }),
      });
      out.push({ address: hostname, stop: () => server.stop(true) });
      log.info("ui", `listening on ${hostname.includes(":") ? `[${hostname}]` : hostname}:${port}`);
    } catch (e) {
      log.error("ui", `cannot listen on ${hostname}:${port}: ${(e as Error).message}`);
    }
  }
  return out;
}
