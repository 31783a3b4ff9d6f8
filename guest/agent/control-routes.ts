/**
 * The control endpoints: POST shutdown (202, then the power handler),
 * GET status (whatever PID 1 reports), GET wait-exit (a long poll for the
 * job's exit: 200 with it, 204 on timeout, 404 without a job).
 */
import { Hono } from "hono";
import {
  agentError,
  type JobExit,
  parseJson,
  ShutdownRequestSchema,
} from "../../lib/agent-protocol.ts";
import {
  type AgentHono,
  type AgentLog,
  bodyMax,
  fail,
  methodNotAllowed,
  noHead,
  queryOf,
} from "./http.ts";

/** What the control routes need (see AgentOptions in server.ts). */
export interface ControlRouteDeps {
  status?: () => unknown;
  power?: (kind: "poweroff" | "reboot", reason: string) => void;
  jobExit?: () => Promise<JobExit | null> | JobExit | null;
  /** Longest wait-exit long poll, ms. */
  maxWaitMs: number;
  log: AgentLog;
}

/** Largest shutdown body ({"kind": ...}). */
const SHUTDOWN_BODY_MAX = 4096;
/** wait-exit's timeout when the client names none, ms. */
const DEFAULT_WAIT_MS = 30_000;

/** wait-exit's ?timeout_ms= (default 30 s); throws agentError 400 if it is not a non-negative integer. */
export function parseWaitTimeout(t: string | null): number {
  const timeout = t === null || t === "" ? DEFAULT_WAIT_MS : Number(t);
  if (!Number.isInteger(timeout) || timeout < 0)
    throw agentError(400, `timeout_ms must be a non-negative integer (got "${t}")`);
  return timeout;
}

/** shutdown, status and wait-exit, relative to the API prefix. */
export function controlRoutes(d: ControlRouteDeps): Hono<AgentHono> {
  const r = new Hono<AgentHono>();

  r.post("/shutdown", bodyMax(SHUTDOWN_BODY_MAX), async (c) => {
    const text = await c.req.text();
    const req = parseJson(ShutdownRequestSchema, text.trim() === "" ? "{}" : text);
    if (!req.ok) return fail(c, 400, req.error);
    const power = d.power;
    if (!power) return fail(c, 501, "this agent cannot power off (no power handler)");
    const kind = req.value.kind;
    const ip = c.get("ip");
    d.log("info", `${kind} requested by ${ip}`);
    // After the answer is on its way: the shutdown may stop this very server.
    setTimeout(() => {
      try {
        power(kind, `agent request from ${ip}`);
      } catch (e) {
        d.log("warn", `${kind} failed: ${(e as Error).message}`);
      }
    }, 10);
    return c.json({ ok: true, kind }, 202);
  });
  r.all("/shutdown", methodNotAllowed("shutdown: use POST", "POST"));

  const statusOnlyGet = methodNotAllowed("status: use GET", "GET");
  r.get("/status", noHead(statusOnlyGet), async (c) => c.json((await d.status?.()) ?? {}, 200));
  r.all("/status", statusOnlyGet);

  const waitOnlyGet = methodNotAllowed("wait-exit: use GET", "GET");
  r.get("/wait-exit", noHead(waitOnlyGet), async (c) => {
    const timeout = parseWaitTimeout(queryOf(c).get("timeout_ms"));
    if (!d.jobExit) return fail(c, 404, "this VM runs no job");
    const first = await Promise.race([
      Promise.resolve(d.jobExit()),
      Bun.sleep(Math.min(timeout, d.maxWaitMs)).then(() => "timeout" as const),
    ]);
    if (first === "timeout") return c.body(null, 204);
    if (first === null) return fail(c, 404, "this VM runs no job");
    return c.json(first, 200);
  });
  r.all("/wait-exit", waitOnlyGet);

  return r;
}
