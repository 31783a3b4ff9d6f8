/**
 * The guest agent inside PID 1 (guest/agent/server.ts does the protocol):
 * served on loopback, the `[agent] listen` addresses and the mycelium
 * address once known, port 9998 by default; clients must come from
 * loopback, 400::/7 or `[agent] allow`, and present the per-VM token the
 * injector wrote (/etc/hero-init/agent.token). Execs are owned children
 * (spawnOwned) so the orphan reaper never steals their exit status.
 *
 * It runs inside PID 1 rather than as a supervised service: shutdown must
 * go through PID 1's graceful path, the job's exit code lives in PID 1, and
 * a guest agent that the supervisor could lose (crash loop, OOM kill) is
 * exactly when the host needs it. Every handler catches its errors.
 */

import { chmodSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { Server, ServerWebSocket } from "bun";
import type { JobExit } from "../../lib/agent-protocol.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import { memoLoad } from "../../lib/memo-load.ts";
import { isAllowedClient, parseCidrs, peerAddress, sourceRefusal } from "../../lib/net-acl.ts";
import { VERSION } from "../../lib/version.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import type { ExecWsData } from "../agent/exec.ts";
import type { Agent, AgentOptions } from "../agent/server.ts";
import { WS_LIMITS } from "../agent/ws-limits.ts";
import { spawnOwned } from "../supervisor/process.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { bindAddresses } from "../ui/serve.ts";
import { installedBinaries } from "../ui/source.ts";
import { openVsockListener, spliceVsockTo } from "./vsock.ts";

/** What Bun.serve needs of an agent. */
type Served = Pick<Agent, "fetch" | "websocket">;

/**
 * An agent whose code (server, exec, wire schemas; its routes were already
 * lazy) loads at its first request, not at boot: PID 1 binds the listeners
 * before READY, and what a profiled boot showed as 42-65 ms of module
 * evaluation under TCG leaves every VM's boot (docs/benchmarks.md, session 12). A failed load fails that
 * request (Bun.serve's error handler answers 500) and the next one tries
 * again. A WebSocket exists only once the loaded agent's fetch has upgraded
 * the request, so its handlers always find the agent.
 *
 * With `allow`, a request from a source it refuses gets the agent's 403
 * here, before anything loads: a peer the agent would refuse cannot make
 * PID 1 load the agent's code. The loaded agent checks the source again.
 */
export function lazyAgent(make: () => Promise<Agent>, allow?: (ip: string) => boolean): Served {
  let agent: Agent | null = null;
  const load = memoLoad(() =>
    make().then(
      (a) => (agent = a),
      (e: unknown) => {
        throw new Error(`cannot load the agent: ${(e as Error)?.message ?? e}`);
      },
    ),
  );
  return {
    fetch: async (req, srv) => {
      const refused =
        allow &&
        sourceRefusal(
          allow,
          peerAddress(() => srv?.requestIP(req)),
        );
      if (refused) {
        log.warn("agent", refused.log);
        return Response.json({ error: refused.error }, { status: 403 });
      }
      return (await load()).fetch(req, srv);
    },
    websocket: {
      ...WS_LIMITS,
      message: (ws: ServerWebSocket<ExecWsData>, msg: string | Buffer) =>
        agent?.websocket.message(ws, msg),
      close: (ws: ServerWebSocket<ExecWsData>) => agent?.websocket.close(ws),
    },
  };
}

export interface AgentDeps {
  sup: Supervisor;
  power: (kind: "poweroff" | "reboot", reason: string) => void;
  /** The job's outcome once known; null when this VM has no job. */
  jobExit: () => Promise<JobExit> | JobExit | null;
  /** Loads the agent's exec module (its cgroup probe); tests give one that fails. */
  loadExec?: () => Promise<Pick<typeof import("../agent/exec.ts"), "cgroupExecGroups">>;
}

/** Starts the agent; returns a function that binds it on one more address (mycelium). */
export function startAgent(
  cfg: VmConfig["agent"],
  d: AgentDeps,
): ((address: string) => void) | null {
  if (!cfg.enabled) {
    log.info("agent", "disabled ([agent] enabled = false)");
    return null;
  }
  let token: string;
  try {
    token = readFileSync(cfg.token_file, "utf8").trim();
    if (token.length < 16) throw new Error("the token is shorter than 16 characters");
  } catch (e) {
    log.warn("agent", `not started: ${cfg.token_file}: ${(e as Error).message}`);
    return null;
  }
  const extra = parseCidrs(cfg.allow);
  // Built at the first request of either listener, once: the exec groups probe makes a cgroup.
  // A failed load is forgotten, so the next request tries again (memoLoad).
  const loadExec = d.loadExec ?? (() => import("../agent/exec.ts"));
  const loadOptions = memoLoad(() =>
    loadExec().then(({ cgroupExecGroups }): Omit<AgentOptions, "allow"> => {
      // One cgroup per exec: a timeout or disconnect also ends what left the process group.
      const execGroups = cgroupExecGroups();
      if (!execGroups)
        log.warn("agent", "no cgroup2: an exec's timeout reaches its process group only");
      return {
        token,
        spawn: (argv, opts) => spawnOwned(argv, opts),
        execGroups,
        status: () => ({
          hero_init: VERSION,
          services: d.sup.names().map((n) => {
            const s = d.sup.status(n);
            return { name: n, state: s.state, pid: s.pid, restarts: s.restarts };
          }),
          binaries: installedBinaries(),
        }),
        power: d.power,
        jobExit: d.jobExit,
        log: (level: "info" | "warn", msg: string) => log[level]("agent", msg),
      };
    }),
  );
  const make = (allow: (ip: string) => boolean) => async () => {
    const [{ createAgent }, o] = await Promise.all([import("../agent/server.ts"), loadOptions()]);
    return createAgent({ ...o, allow });
  };
  const allow = (ip: string) => isAllowedClient(ip, extra);
  const agent = lazyAgent(make(allow), allow);
  const bind = (hostname: string) => {
    try {
      Bun.serve<ExecWsData>({
        hostname,
        port: cfg.port,
        // Uploads up to the agent's 1 GiB file limit (it enforces the real limit while streaming).
        maxRequestBodySize: 1024 ** 3 + 1024 ** 2,
        fetch: (req: Request, srv: Server<ExecWsData>) => agent.fetch(req, srv),
        websocket: agent.websocket,
        error: (e: Error) =>
          new Response(JSON.stringify({ error: e.message }), {
            status: 500,
            headers: { "content-type": "application/json" },
          }),
      });
      log.info(
        "agent",
        `listening on ${hostname.includes(":") ? `[${hostname}]` : hostname}:${cfg.port}`,
      );
    } catch (e) {
      log.error("agent", `cannot listen on ${hostname}:${cfg.port}: ${describeError(e)}`);
    }
  };
  for (const a of bindAddresses(cfg.listen)) bind(a);
  if (cfg.vsock) serveVsock(cfg.port, () => lazyAgent(make(() => true)));
  return bind;
}

/**
 * vsock: only the host and this VM reach a vsock port, so the agent behind
 * it skips the address check (the token is still required). It listens on
 * a private unix socket that the vsock listener splices connections to.
 */
function serveVsock(port: number, makeAgent: () => Served): void {
  // No vsock transport (the common case without a vsock device): nothing else is set up.
  const fd = openVsockListener(port);
  if (fd === null) return;
  const agent = makeAgent();
  try {
    mkdirSync(dirname(LAYOUT.agentSocket), { recursive: true, mode: 0o700 });
    rmSync(LAYOUT.agentSocket, { force: true });
    Bun.serve<ExecWsData>({
      unix: LAYOUT.agentSocket,
      maxRequestBodySize: 1024 ** 3 + 1024 ** 2,
      fetch: (req: Request, srv: Server<ExecWsData>) => agent.fetch(req, srv),
      websocket: agent.websocket,
    });
    chmodSync(LAYOUT.agentSocket, 0o600);
  } catch (e) {
    log.error("agent", `cannot listen on ${LAYOUT.agentSocket}: ${describeError(e)}`);
    return;
  }
  spliceVsockTo(fd, LAYOUT.agentSocket);
}
