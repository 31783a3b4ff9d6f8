/**
 * Exec for the guest agent: runs a command and turns its stdout/stderr into
 * the framed stream of protocol.ts, with backpressure (a pipe is read only
 * when the HTTP client has taken what came before, so 50 MB of output never
 * sits in memory), a timeout that stops the whole process group (SIGTERM,
 * then SIGKILL after a grace period), and a kill when the client goes away.
 * Also the interactive variant: a PTY (Bun.spawn's `terminal` option) over a
 * WebSocket. The spawn function is injected: in PID 1 it is spawnOwned()
 * (init/supervisor/process.ts), so the reaper never steals the child.
 */
import { existsSync, statSync } from "node:fs";
import type { ServerWebSocket, Subprocess } from "bun";
import { killGroup } from "../init/supervisor/process.ts";
import {
  CH_STDERR,
  CH_STDOUT,
  type ExecExit,
  type ExecRequest,
  encodeExit,
  encodeFrame,
  exitCodeOf,
  parseJson,
  signalNumber,
  spawnErrorExit,
  TIMEOUT_CODE,
  WsControlSchema,
  type WsStart,
  WsStartSchema,
} from "./protocol.ts";

/** Bun.spawn's options as the agent uses them (what spawnOwned accepts). */
export type AgentSpawnOptions = Omit<
  Bun.SpawnOptions.SpawnOptions<"ignore" | "pipe", "ignore" | "pipe", "ignore" | "pipe">,
  "stdio"
>;
/** Starts a process; throws (like Bun.spawn) if it cannot. */
export type SpawnFn = (argv: string[], opts: AgentSpawnOptions) => Subprocess;

/** Plain Bun.spawn, for use outside PID 1 (tests, `hero-init init` mode). */
export const defaultSpawn: SpawnFn = (argv, opts) => Bun.spawn(argv, opts) as Subprocess;

/** Exec tuning. */
export interface ExecTuning {
  /** Time between SIGTERM and SIGKILL when a timeout or disconnect stops a process. */
  killGraceMs: number;
  /**
   * After the process exits, how long a pipe may stay silent before the
   * agent stops reading it (a background child that inherited stdout would
   * otherwise hold the response open for ever).
   */
  drainIdleMs: number;
  /** Bytes read from one pipe per frame at most (Bun's pipe reads are usually 64 KiB). */
  maxChunk: number;
}

export const DEFAULT_TUNING: ExecTuning = {
  killGraceMs: 2000,
  drainIdleMs: 1000,
  maxChunk: 1024 * 1024,
};

/** The environment of an exec: a small base (never PID 1's own) plus the request's. */
export function execEnv(extra: Record<string, string> | undefined): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    HOME: "/root",
    ...(extra ?? {}),
  };
}

/** Checks the working directory before spawning (Bun reports a missing cwd as ENOENT, i.e. "command not found"). */
export function cwdError(cwd: string): string | null {
  try {
    if (!existsSync(cwd)) return `cwd ${cwd} does not exist`;
    if (!statSync(cwd).isDirectory()) return `cwd ${cwd} is not a directory`;
  } catch (e) {
    return `cwd ${cwd}: ${(e as Error).message}`;
  }
  return null;
}

/** SIGTERM the group now, SIGKILL it after `graceMs` unless `exited` settles first. */
function stopGroup(proc: Subprocess, graceMs: number): void {
  killGroup(proc.pid, "SIGTERM");
  const t = setTimeout(() => killGroup(proc.pid, "SIGKILL"), graceMs);
  proc.exited.then(
    () => {
      // The leader is gone; whatever it left in its group gets the KILL at once after grace.
      setTimeout(() => killGroup(proc.pid, "SIGKILL"), graceMs).unref?.();
      clearTimeout(t);
    },
    () => clearTimeout(t),
  );
}

/** A running exec: its framed output and a way to stop it. */
export interface ExecHandle {
  stream: ReadableStream<Uint8Array>;
  /** Resolves with the exit (also sent as the last frame). */
  done: Promise<ExecExit>;
}

/**
 * Starts `req` and returns its framed output. A spawn failure is not an
 * error here: the stream carries one exit frame with 127 or 126.
 */
export function startExec(
  spawn: SpawnFn,
  req: ExecRequest,
  tuning: ExecTuning = DEFAULT_TUNING,
): ExecHandle {
  let resolveDone!: (x: ExecExit) => void;
  const done = new Promise<ExecExit>((r) => {
    resolveDone = r;
  });
  const argv0 = req.argv[0] as string;
  let proc: Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  try {
    proc = spawn(req.argv, {
      cwd: req.cwd ?? "/",
      env: execEnv(req.env),
      stdin: req.stdin !== undefined ? "pipe" : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      // Its own session and process group, so a timeout can stop everything it started.
      detached: true,
    }) as Subprocess<"pipe" | "ignore", "pipe", "pipe">;
  } catch (e) {
    const exit = spawnErrorExit(argv0, e);
    resolveDone(exit);
    return {
      stream: new ReadableStream({
        start(c) {
          c.enqueue(encodeExit(exit));
          c.close();
        },
      }),
      done,
    };
  }

  // stdin: write the whole buffer, then close; a child that does not read gets EPIPE, which is fine.
  if (req.stdin !== undefined && proc.stdin && typeof proc.stdin !== "number") {
    const sink = proc.stdin;
    const data = Buffer.from(req.stdin, "base64");
    (async () => {
      try {
        if (data.byteLength > 0) sink.write(data);
        await sink.flush();
        await sink.end();
      } catch {
        // the child closed its stdin
      }
    })();
  }

  let timedOut = false;
  let cancelled = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (req.timeout_ms !== undefined) {
    timer = setTimeout(() => {
      timedOut = true;
      stopGroup(proc, tuning.killGraceMs);
    }, req.timeout_ms);
  }
  let exitedAt: number | null = null;
  const exitedSignal = proc.exited.then(
    () => null,
    () => null,
  );

  // Backpressure: pumps wait until the consumer has pulled (desiredSize > 0).
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const waiters = new Set<() => void>();
  const wakeAll = () => {
    for (const w of waiters) w();
    waiters.clear();
  };
  const room = async () => {
    while (!cancelled && (controller.desiredSize ?? 0) <= 0) {
      await new Promise<void>((r) => waiters.add(r));
    }
  };

  const pump = async (src: ReadableStream<Uint8Array>, channel: number) => {
    const reader = src.getReader();
    // One read may outlive a race (with the exit or the idle timer): keep it, never lose its data.
    let pending: ReturnType<typeof reader.read> | null = null;
    try {
      for (;;) {
        await room();
        if (cancelled) break;
        pending ??= reader.read();
        let res: Awaited<ReturnType<typeof reader.read>>;
        if (exitedAt === null) {
          const r = await Promise.race([pending, exitedSignal]);
          if (r === null) {
            exitedAt ??= Date.now();
            continue;
          }
          res = r;
        } else {
          // Once the process has exited, a pipe that stays silent is held by a background child: stop.
          const r = await Promise.race([pending, Bun.sleep(tuning.drainIdleMs).then(() => null)]);
          if (r === null) break;
          res = r;
        }
        pending = null;
        if (res.done) break;
        let chunk = res.value;
        while (chunk.byteLength > 0) {
          const part = chunk.subarray(0, tuning.maxChunk);
          chunk = chunk.subarray(part.byteLength);
          if (cancelled) break;
          controller.enqueue(encodeFrame(channel, part));
        }
      }
    } catch {
      // pipe error: the exit is still reported
    } finally {
      reader.cancel().catch(() => {});
    }
  };

  const stream = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
        const pumps = Promise.all([pump(proc.stdout, CH_STDOUT), pump(proc.stderr, CH_STDERR)]);
        Promise.all([pumps, proc.exited.catch(() => null)]).then(() => {
          if (timer) clearTimeout(timer);
          const base = exitCodeOf(proc.exitCode, proc.signalCode ? String(proc.signalCode) : null);
          const exit: ExecExit = timedOut ? { ...base, code: TIMEOUT_CODE, timed_out: true } : base;
          resolveDone(exit);
          if (cancelled) return;
          try {
            controller.enqueue(encodeExit(exit));
            controller.close();
          } catch {
            // the consumer went away meanwhile
          }
        });
      },
      pull() {
        wakeAll();
      },
      cancel() {
        // The client disconnected: stop the command (and everything it started).
        cancelled = true;
        wakeAll();
        if (timer) clearTimeout(timer);
        if (proc.exitCode === null && proc.signalCode === null) stopGroup(proc, tuning.killGraceMs);
      },
    },
    // Up to ~1 MiB of frames queued before the pipes are left unread.
    { highWaterMark: 1024 * 1024, size: (chunk) => chunk?.byteLength ?? 0 },
  );
  return { stream, done };
}

// ---- interactive exec over a WebSocket (PTY) -------------------------------------

/** Data attached to an exec WebSocket at upgrade time. */
export interface ExecWsData {
  kind: "hero-agent-exec";
  ip: string;
  proc?: Subprocess;
  started?: boolean;
  finished?: boolean;
}

/** Options of the WebSocket exec handler. */
export interface WsExecOptions {
  spawn: SpawnFn;
  /** Called when a session ends (to release the concurrency slot). */
  onEnd: () => void;
  log: (msg: string) => void;
  /** Largest message accepted from the client. */
  maxMessage?: number;
}

const sendJson = (ws: ServerWebSocket<ExecWsData>, x: unknown) => {
  try {
    ws.send(JSON.stringify(x));
  } catch {
    // closed
  }
};

function finish(ws: ServerWebSocket<ExecWsData>, o: WsExecOptions, exit: ExecExit | null) {
  if (ws.data.finished) return;
  ws.data.finished = true;
  o.onEnd();
  if (exit) sendJson(ws, { exit });
  try {
    ws.close(1000, exit ? `exit ${exit.code}` : "done");
  } catch {
    // already closed
  }
}

function startTty(ws: ServerWebSocket<ExecWsData>, o: WsExecOptions, start: WsStart): void {
  const cwd = start.cwd ?? "/";
  const bad = cwdError(cwd);
  if (bad) {
    sendJson(ws, { error: bad });
    finish(ws, o, null);
    return;
  }
  let proc: Subprocess;
  let ptyClosed: () => void = () => {};
  const ptyDone = new Promise<void>((r) => {
    ptyClosed = r;
  });
  try {
    proc = o.spawn(start.argv, {
      cwd,
      env: { TERM: "xterm-256color", ...execEnv(start.env) },
      terminal: {
        cols: start.cols,
        rows: start.rows,
        data: (_t, bytes) => {
          // A client that stops reading is dropped rather than buffered without bound.
          if (ws.getBufferedAmount() > 8 * 1024 * 1024) {
            killGroup(proc.pid, "SIGKILL");
            try {
              ws.close(1008, "client too slow");
            } catch {}
          } else ws.sendBinary(bytes);
        },
        exit: () => ptyClosed(),
      },
    });
  } catch (e) {
    finish(ws, o, spawnErrorExit(start.argv[0] as string, e));
    return;
  }
  ws.data.proc = proc;
  o.log(`exec (tty) ${start.argv[0]} for ${ws.data.ip}`);
  proc.exited.then(
    async () => {
      // Output written just before exit may still be in the PTY: wait for its EOF (bounded).
      await Promise.race([ptyDone, Bun.sleep(500)]);
      try {
        proc.terminal?.close();
      } catch {}
      finish(ws, o, exitCodeOf(proc.exitCode, proc.signalCode ? String(proc.signalCode) : null));
    },
    () => finish(ws, o, { code: 255, error: "lost track of the process" }),
  );
}

/** The Bun.serve websocket handler of GET exec/ws. Never throws. */
export function wsExecHandler(o: WsExecOptions) {
  return {
    maxPayloadLength: o.maxMessage ?? 1024 * 1024,
    idleTimeout: 0,
    message(ws: ServerWebSocket<ExecWsData>, msg: string | Buffer) {
      try {
        if (!ws.data.started) {
          ws.data.started = true;
          if (typeof msg !== "string") {
            sendJson(ws, { error: "the first message must be JSON text {argv, cols, rows, tty}" });
            finish(ws, o, null);
            return;
          }
          const r = parseJson(WsStartSchema, msg);
          if (!r.ok) {
            sendJson(ws, { error: r.error });
            finish(ws, o, null);
            return;
          }
          startTty(ws, o, r.value);
          return;
        }
        const proc = ws.data.proc;
        if (!proc || ws.data.finished) return;
        if (typeof msg !== "string") {
          proc.terminal?.write(msg);
          return;
        }
        const r = parseJson(WsControlSchema, msg);
        if (!r.ok) {
          sendJson(ws, { error: r.error });
          return;
        }
        if ("resize" in r.value) proc.terminal?.resize(r.value.resize.cols, r.value.resize.rows);
        else killGroup(proc.pid, signalNumber(r.value.signal) ?? "SIGTERM");
      } catch (e) {
        sendJson(ws, { error: `internal error: ${(e as Error).message}` });
      }
    },
    close(ws: ServerWebSocket<ExecWsData>) {
      try {
        const p = ws.data.proc;
        if (p && p.exitCode === null && p.signalCode === null) {
          killGroup(p.pid, "SIGHUP");
          setTimeout(() => killGroup(p.pid, "SIGKILL"), 2000).unref?.();
        }
        if (!ws.data.finished) {
          ws.data.finished = true;
          o.onEnd();
        }
      } catch {
        // never escape into PID 1
      }
    },
  };
}
