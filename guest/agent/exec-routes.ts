/**
 * The exec endpoints: POST exec (a framed stdout/stderr/exit stream,
 * exec.ts) and GET exec/ws (the upgrade to an interactive PTY session; the
 * session itself is exec.ts's wsExecHandler). Both share the concurrency
 * limit (slots.ts). Any other method on these paths is a 404.
 */
import { Hono } from "hono";
import { ExecRequestSchema, parseJson, STREAM_CONTENT_TYPE } from "../../lib/agent-protocol.ts";
import {
  cwdError,
  type ExecGroups,
  type ExecTuning,
  type ExecWsData,
  type SpawnFn,
  startExec,
} from "./exec.ts";
import { type AgentHono, type AgentLog, bodyMax, fail, noHead, notFound } from "./http.ts";
import type { ExecSlots } from "./slots.ts";

/** What the exec routes need. */
export interface ExecRouteDeps {
  spawn: SpawnFn;
  tuning: ExecTuning;
  groups: ExecGroups | null;
  slots: ExecSlots;
  /** Largest exec request body (JSON with base64 stdin), bytes. */
  maxExecBody: number;
  log: AgentLog;
}

/** POST exec and GET exec/ws, relative to the API prefix. */
export function execRoutes(d: ExecRouteDeps): Hono<AgentHono> {
  const r = new Hono<AgentHono>();

  r.post("/exec", bodyMax(d.maxExecBody), async (c) => {
    const req = parseJson(ExecRequestSchema, await c.req.text());
    if (!req.ok) return fail(c, 400, req.error);
    const bad = cwdError(req.value.cwd ?? "/");
    if (bad) return fail(c, 400, bad);
    if (!d.slots.take()) return fail(c, 429, d.slots.busyMessage);
    d.log("info", `exec ${req.value.argv[0]} for ${c.get("ip")}`);
    const h = startExec(d.spawn, req.value, d.tuning, d.groups);
    const release = () => d.slots.release();
    h.done.then(release, release);
    return c.body(h.stream, 200, {
      "content-type": STREAM_CONTENT_TYPE,
      "cache-control": "no-store",
    });
  });

  r.get("/exec/ws", noHead(notFound), (c) => {
    const upgrade = c.env?.upgrade;
    if (!upgrade) return fail(c, 500, "WebSocket exec needs Bun.serve");
    if ((c.req.header("upgrade") ?? "").toLowerCase() !== "websocket")
      return fail(c, 426, "exec/ws needs a WebSocket upgrade");
    if (!d.slots.take()) return fail(c, 429, d.slots.busyMessage);
    const data: ExecWsData = { kind: "hero-agent-exec", ip: c.get("ip") };
    // Bun answers the upgrade itself; server.ts drops this placeholder response.
    if (upgrade(c.req.raw, { data })) return new Response(null);
    d.slots.release();
    return fail(c, 400, "WebSocket upgrade failed");
  });

  return r;
}
