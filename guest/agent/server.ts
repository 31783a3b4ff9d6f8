/**
 * The guest agent's server: the host's hands inside the VM (exec, files,
 * stat, shutdown, status, wait-exit; docs/agent.md). `createAgent` resolves
 * the options, builds the Hono app (app.ts) and adapts it to Bun.serve as a
 * `fetch` + `websocket` pair, with every dependency injected (spawn, power,
 * status, job exit) so it runs the same in PID 1 and in tests. Order of
 * checks on every request: source address (403), then the bearer token
 * (401; the token is never logged), then the route. Nothing escapes: this
 * code runs inside PID 1.
 */
import type { Server } from "bun";
import type { JobExit } from "../../lib/agent-protocol.ts";
import { memoLoad } from "../../lib/memo-load.ts";
import { isAllowedClient } from "../../lib/net-acl.ts";
import type { AgentAppDeps, createAgentApp } from "./app.ts";
import {
  DEFAULT_TUNING,
  defaultSpawn,
  type ExecGroups,
  type ExecTuning,
  type ExecWsData,
  type SpawnFn,
  wsExecHandler,
} from "./exec.ts";
import type { AgentEnv } from "./http.ts";
import { safeLog } from "./http.ts";
import { ExecSlots } from "./slots.ts";

/** What PID 1 (or a test) gives the agent. */
export interface AgentOptions {
  /** The per-VM token (already trimmed). */
  token: string;
  /** May this client address talk to the agent? Default: loopback and mycelium (400::/7). */
  allow?: (ip: string) => boolean;
  /** Starts processes. In PID 1: spawnOwned. Default: Bun.spawn. */
  spawn?: SpawnFn;
  /** Services, versions, anything JSON: GET status. */
  status?: () => unknown;
  /** Powers off or reboots (gracefully). Called after the 202 is sent. */
  power?: (kind: "poweroff" | "reboot", reason: string) => void;
  /**
   * The job's exit: resolves when the job has ended; resolves null at once
   * when this VM has no job (wait-exit then answers 404).
   */
  jobExit?: () => Promise<JobExit | null> | JobExit | null;
  /** Largest file PUT accepted (bytes). Default 1 GiB. */
  maxFileSize?: number;
  /** Largest exec request body (JSON with base64 stdin). Default 64 MiB. */
  maxExecBody?: number;
  /** Concurrent execs (HTTP and WebSocket together). Default 16. */
  maxExecs?: number;
  /** Longest wait-exit long-poll (ms). Default 10 minutes. */
  maxWaitMs?: number;
  /** Exec timing (kill grace, drain). */
  tuning?: Partial<ExecTuning>;
  /**
   * One group per exec, so a timeout or disconnect also ends the processes
   * that left the command's process group (setsid). In PID 1:
   * cgroupExecGroups(). Default null: the process group only.
   */
  execGroups?: ExecGroups | null;
  /** Log sink; messages never contain the token or file contents. */
  log?: (level: "info" | "warn", msg: string) => void;
}

/** The agent: hand `fetch` and `websocket` to Bun.serve. */
export interface Agent {
  fetch(req: Request, server?: Server<ExecWsData>): Promise<Response | undefined>;
  websocket: ReturnType<typeof wsExecHandler>;
  /** Execs running now. */
  readonly running: number;
}

/** The options with their defaults. Throws if the token is empty (an agent without a token must not serve). */
export function resolveOptions(opts: AgentOptions): Omit<AgentAppDeps, "slots"> & {
  maxExecs: number;
} {
  if (!opts.token || opts.token.trim() === "")
    throw new Error("guest agent: refusing to start without a token");
  return {
    token: opts.token.trim(),
    allow: opts.allow ?? ((ip: string) => isAllowedClient(ip)),
    spawn: opts.spawn ?? defaultSpawn,
    status: opts.status,
    power: opts.power,
    jobExit: opts.jobExit,
    maxFileSize: opts.maxFileSize ?? 1024 * 1024 * 1024,
    maxExecBody: opts.maxExecBody ?? 64 * 1024 * 1024,
    maxExecs: opts.maxExecs ?? 16,
    maxWaitMs: opts.maxWaitMs ?? 10 * 60 * 1000,
    tuning: { ...DEFAULT_TUNING, ...(opts.tuning ?? {}) },
    groups: opts.execGroups ?? null,
    log: safeLog(opts.log),
  };
}

/** Bun's server as the app's env; `onUpgrade` learns that Bun took the request over. */
function bunEnv(server: Server<ExecWsData>, onUpgrade: () => void): AgentEnv {
  return {
    requestIP: (req) => server.requestIP(req),
    timeout: (req, seconds) => server.timeout(req, seconds),
    upgrade: (req, o) => {
      const ok = server.upgrade(req, o);
      if (ok) onUpgrade();
      return ok;
    },
  };
}

type AgentApp = ReturnType<typeof createAgentApp>;

/** Creates the agent. Throws if the token is empty. */
export function createAgent(opts: AgentOptions): Agent {
  const deps = resolveOptions(opts);
  const slots = new ExecSlots(deps.maxExecs);
  // The routes (exec, files, control) load at the first request, not at boot.
  // A failed load answers that request with a 500 and is tried again by the next one.
  const loadApp = memoLoad(
    (): Promise<AgentApp> =>
      import("./app.ts").then(
        (m) => m.createAgentApp({ ...deps, slots }),
        (e: unknown) => {
          throw new Error(`cannot load the agent's routes: ${(e as Error)?.message ?? e}`);
        },
      ),
  );
  const websocket = wsExecHandler({
    spawn: deps.spawn,
    onEnd: () => slots.release(),
    log: (m) => deps.log("info", m),
    groups: deps.groups,
  });
  return {
    get running() {
      return slots.running;
    },
    websocket,
    async fetch(req: Request, server?: Server<ExecWsData>): Promise<Response | undefined> {
      let upgraded = false;
      try {
        const env = server ? bunEnv(server, () => (upgraded = true)) : {};
        const res = await (await loadApp()).fetch(req, env);
        // After an upgrade Bun owns the connection: answer nothing.
        return upgraded ? undefined : res;
      } catch (e) {
        // app.ts's error handler answers every route's errors; this is the last line.
        const msg = (e as Error)?.message ?? String(e);
        deps.log("warn", `internal error: ${msg}`);
        return Response.json({ error: `internal error: ${msg}` }, { status: 500 });
      }
    },
  };
}
