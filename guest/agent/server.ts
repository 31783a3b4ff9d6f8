/**
 * The guest agent's HTTP/WebSocket server: the host's hands inside the VM
 * (exec, files, stat, shutdown, status, wait-exit; docs/agent.md). It is a
 * `fetch` + `websocket` pair for Bun.serve, with every dependency injected
 * (spawn, power, status, job exit) so it runs the same in PID 1 and in
 * tests. Order of checks on every request: source address (403), then the
 * bearer token (401, constant-time compare of sha256 digests; the token is
 * never logged), then the route. Every handler catches everything: this
 * code runs inside PID 1, where an escaping exception must never happen.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { Server } from "bun";
import {
  API_PREFIX,
  ExecRequestSchema,
  type JobExit,
  parseId,
  parseJson,
  parseMode,
  parseMtime,
  pathError,
  ShutdownRequestSchema,
  STREAM_CONTENT_TYPE,
} from "../../lib/agent-protocol.ts";
import { isAllowedClient } from "../../lib/net-acl.ts";
import {
  cwdError,
  DEFAULT_TUNING,
  defaultSpawn,
  type ExecGroups,
  type ExecTuning,
  type ExecWsData,
  type SpawnFn,
  startExec,
  wsExecHandler,
} from "./exec.ts";
import { AgentError, getFile, putFile, putSymlink, statPath } from "./files.ts";

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

const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
const error = (status: number, message: string, headers: Record<string, string> = {}) =>
  json(status, { error: message }, headers);

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/** Reads a body as text, refusing more than `max` bytes (checked while reading). */
async function readText(req: Request, max: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > max)
    throw new AgentError(413, `request body too large (limit ${max} bytes)`);
  if (!req.body) return "";
  const parts: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > max) {
      reader.cancel().catch(() => {});
      throw new AgentError(413, `request body too large (limit ${max} bytes)`);
    }
    parts.push(value);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** Creates the agent. Throws if the token is empty (an agent without a token must not serve). */
export function createAgent(opts: AgentOptions): Agent {
  if (!opts.token || opts.token.trim() === "")
    throw new Error("guest agent: refusing to start without a token");
  const tokenDigest = digest(opts.token.trim());
  const allow = opts.allow ?? ((ip: string) => isAllowedClient(ip));
  const spawn = opts.spawn ?? defaultSpawn;
  const maxFileSize = opts.maxFileSize ?? 1024 * 1024 * 1024;
  const maxExecBody = opts.maxExecBody ?? 64 * 1024 * 1024;
  const maxExecs = opts.maxExecs ?? 16;
  const maxWaitMs = opts.maxWaitMs ?? 10 * 60 * 1000;
  const tuning: ExecTuning = { ...DEFAULT_TUNING, ...(opts.tuning ?? {}) };
  const groups = opts.execGroups ?? null;
  const log = (level: "info" | "warn", msg: string) => {
    try {
      opts.log?.(level, msg);
    } catch {
      // a broken log sink must not break a request
    }
  };
  let running = 0;

  const authorized = (req: Request): boolean => {
    const h = req.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
    // Compare digests of equal length: neither the token's length nor its prefix leaks.
    return timingSafeEqual(digest(m?.[1] ?? ""), tokenDigest) && m !== null;
  };

  const websocket = wsExecHandler({
    spawn,
    onEnd: () => {
      running = Math.max(0, running - 1);
    },
    log: (m) => log("info", m),
    groups,
  });

  async function route(req: Request, url: URL, ip: string, server?: Server<ExecWsData>) {
    const path = url.pathname.slice(API_PREFIX.length);
    const q = url.searchParams;
    const method = req.method;

    if (path === "/exec" && method === "POST") {
      const r = parseJson(ExecRequestSchema, await readText(req, maxExecBody));
      if (!r.ok) return error(400, r.error);
      const bad = cwdError(r.value.cwd ?? "/");
      if (bad) return error(400, bad);
      if (running >= maxExecs) return error(429, `too many execs running (limit ${maxExecs})`);
      running++;
      log("info", `exec ${r.value.argv[0]} for ${ip}`);
      const h = startExec(spawn, r.value, tuning, groups);
      h.done.then(
        () => {
          running = Math.max(0, running - 1);
        },
        () => {
          running = Math.max(0, running - 1);
        },
      );
      return new Response(h.stream, {
        status: 200,
        headers: { "content-type": STREAM_CONTENT_TYPE, "cache-control": "no-store" },
      });
    }

    if (path === "/exec/ws" && method === "GET") {
      if (!server) return error(500, "WebSocket exec needs Bun.serve");
      if ((req.headers.get("upgrade") ?? "").toLowerCase() !== "websocket")
        return error(426, "exec/ws needs a WebSocket upgrade");
      if (running >= maxExecs) return error(429, `too many execs running (limit ${maxExecs})`);
      running++;
      const data: ExecWsData = { kind: "hero-agent-exec", ip };
      if (server.upgrade(req, { data })) return undefined;
      running--;
      return error(400, "WebSocket upgrade failed");
    }

    if (path === "/files" || path === "/stat") {
      const p = q.get("path");
      const bad = pathError(p);
      if (bad) return error(400, bad);
      const file = p as string;
      if (path === "/stat") {
        if (method !== "GET") return error(405, "stat: use GET", { allow: "GET" });
        return json(200, await statPath(file, q.get("follow") === "1"));
      }
      if (method === "GET" || method === "HEAD")
        return await getFile(file, q.get("nofollow") === "1");
      if (method === "PUT") {
        let mode: number | null;
        let mtime: number | null;
        let uid: number | null;
        let gid: number | null;
        try {
          mode = parseMode(q.get("mode"));
          mtime = parseMtime(q.get("mtime"));
          uid = parseId("uid", q.get("uid"));
          gid = parseId("gid", q.get("gid"));
        } catch (e) {
          return error(400, (e as Error).message);
        }
        const mkdir = q.get("mkdir") === "1";
        const target = q.get("symlink");
        if (target !== null) {
          req.body?.cancel().catch(() => {});
          log("info", `symlink ${file} for ${ip}`);
          return json(201, await putSymlink(file, target, { mtime, uid, gid, mkdir }));
        }
        const cl = req.headers.get("content-length");
        const declared = cl !== null && /^\d+$/.test(cl) ? Number(cl) : null;
        const res = await putFile(file, req.body, {
          mode,
          mtime,
          uid,
          gid,
          mkdir,
          maxSize: maxFileSize,
          declaredSize: declared,
        });
        log("info", `wrote ${file} (${res.size} bytes) for ${ip}`);
        return json(201, res);
      }
      return error(405, `files: use GET or PUT (got ${method})`, { allow: "GET, PUT" });
    }

    if (path === "/shutdown") {
      if (method !== "POST") return error(405, "shutdown: use POST", { allow: "POST" });
      const text = await readText(req, 4096);
      const r = parseJson(ShutdownRequestSchema, text.trim() === "" ? "{}" : text);
      if (!r.ok) return error(400, r.error);
      if (!opts.power) return error(501, "this agent cannot power off (no power handler)");
      const kind = r.value.kind;
      const power = opts.power;
      log("info", `${kind} requested by ${ip}`);
      // After the answer is on its way: the shutdown may stop this very server.
      setTimeout(() => {
        try {
          power(kind, `agent request from ${ip}`);
        } catch (e) {
          log("warn", `${kind} failed: ${(e as Error).message}`);
        }
      }, 10);
      return json(202, { ok: true, kind });
    }

    if (path === "/status") {
      if (method !== "GET") return error(405, "status: use GET", { allow: "GET" });
      return json(200, (await opts.status?.()) ?? {});
    }

    if (path === "/wait-exit") {
      if (method !== "GET") return error(405, "wait-exit: use GET", { allow: "GET" });
      const t = q.get("timeout_ms");
      const timeout = t === null || t === "" ? 30_000 : Number(t);
      if (!Number.isInteger(timeout) || timeout < 0)
        return error(400, `timeout_ms must be a non-negative integer (got "${t}")`);
      if (!opts.jobExit) return error(404, "this VM runs no job");
      const first = await Promise.race([
        Promise.resolve(opts.jobExit()),
        Bun.sleep(Math.min(timeout, maxWaitMs)).then(() => "timeout" as const),
      ]);
      if (first === "timeout") return new Response(null, { status: 204 });
      if (first === null) return error(404, "this VM runs no job");
      return json(200, first);
    }

    return error(404, `no such endpoint: ${method} ${url.pathname}`);
  }

  return {
    get running() {
      return running;
    },
    websocket,
    async fetch(req: Request, server?: Server<ExecWsData>): Promise<Response | undefined> {
      try {
        let ip = "";
        try {
          ip = server?.requestIP(req)?.address ?? "";
        } catch {
          // no address: the policy decides on ""
        }
        let allowed = false;
        try {
          allowed = allow(ip);
        } catch {
          allowed = false;
        }
        if (!allowed) {
          log("warn", `refused ${ip || "unknown address"}: not an allowed source`);
          return error(403, `source address ${ip || "(unknown)"} is not allowed`);
        }
        if (!authorized(req)) {
          log("warn", `refused ${ip}: missing or wrong token`);
          return error(401, "missing or wrong token (Authorization: Bearer <token>)", {
            "www-authenticate": 'Bearer realm="hero-agent"',
          });
        }
        const url = new URL(req.url);
        if (!url.pathname.startsWith(`${API_PREFIX}/`))
          return error(404, `no such endpoint: ${url.pathname} (the API is under ${API_PREFIX}/)`);
        // Long polls, slow commands and big uploads must not hit Bun's 10 s idle timeout.
        try {
          server?.timeout(req, 0);
        } catch {}
        return await route(req, url, ip, server);
      } catch (e) {
        if (e instanceof AgentError) return error(e.status, e.message);
        log("warn", `internal error: ${(e as Error)?.message ?? String(e)}`);
        return error(500, `internal error: ${(e as Error)?.message ?? String(e)}`);
      }
    },
  };
}
