/**
 * Exec for the guest agent: runs a command and turns its stdout/stderr into
 * the framed stream of protocol.ts, with backpressure (a pipe is read only
 * when the HTTP client has taken what came before, so 50 MB of output never
 * sits in memory), a timeout that stops everything the command started
 * (SIGTERM, then SIGKILL after a grace period), and the same when the client
 * goes away. Also the interactive variant: a PTY (Bun.spawn's `terminal`
 * option) over a WebSocket. The spawn function is injected: in PID 1 it is
 * spawnOwned() (guest/supervisor/process.ts), so the reaper never steals the
 * child.
 *
 * "Everything the command started": each exec gets its own cgroup when
 * PID 1 has cgroup2 (ExecGroups, cgroupExecGroups()), joined by the exec
 * helper before the command's first instruction, so a child that left the
 * process group (setsid, a double fork) is still found and killed
 * (cgroup.kill). Without cgroups the process group is all there is.
 */

import { accessSync, constants, existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { ServerWebSocket, Subprocess } from "bun";
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
} from "../../lib/agent-protocol.ts";
import { LAYOUT } from "../../lib/layout.ts";
import {
  createExecGroup,
  joinGroupDir,
  killTree,
  pidsIn,
  removeGroupDir,
} from "../supervisor/cgroup.ts";
import { killGroup } from "../supervisor/process.ts";
import { WS_LIMITS } from "./ws-limits.ts";

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

// ---- where an exec's processes live -----------------------------------------------

/**
 * One group of processes per exec, so that a stop reaches the processes that
 * left the command's process group. In PID 1 these are cgroups
 * (cgroupExecGroups()); tests may pass their own.
 */
export interface ExecGroups {
  /** A fresh, empty group, or null (that exec then runs in its process group only). */
  create(): string | null;
  /**
   * The exec helper (`hero-exec -c GROUP -- ARGV`, guest/preinit/preinit.c)
   * that joins the group before exec, so nothing the command does can
   * precede its joining; null: the pid is moved right after the spawn.
   */
  helper: string | null;
  /** Moves a pid into a group (used without a helper). */
  join(group: string, pid: number): void;
  /** Pids in the group now. */
  pids(group: string): number[];
  /** SIGKILLs everything in the group; resolves true once it is empty (bounded wait). */
  kill(group: string): Promise<boolean>;
  /** Removes the group if it is empty; false while processes remain in it. */
  remove(group: string): boolean;
}

/**
 * The exec groups of PID 1: CGROUP_ROOT/agent:exec/exec-<n>
 * (guest/supervisor/cgroup.ts), joined through the exec helper when it is
 * installed. Null when cgroup2 is not available: execs then run in their
 * process group only (a child that calls setsid escapes a timeout there).
 */
export function cgroupExecGroups(
  helper = process.env.HERO_EXEC_HELPER ?? LAYOUT.execHelper,
): ExecGroups | null {
  // A group that cannot be made here (no cgroup2, read-only) means no groups at all.
  const probe = createExecGroup();
  if (probe === null) return null;
  removeGroupDir(probe);
  return {
    create: createExecGroup,
    helper: existsSync(helper) ? helper : null,
    join: (group, pid) => void joinGroupDir(group, pid),
    pids: pidsIn,
    kill: (group) => killTree(group),
    remove: removeGroupDir,
  };
}

/**
 * Why `argv0` cannot run (127 not found, 126 not executable), or null. With
 * the exec helper, Bun.spawn starts the helper, which always exists; this
 * check keeps the answer for a missing command what it is without the
 * helper: an exit frame with 127 and a message.
 */
export function commandError(argv0: string, cwd: string, path: string): ExecExit | null {
  if (!argv0.includes("/")) {
    return Bun.which(argv0, { PATH: path, cwd }) === null
      ? { code: 127, error: `${argv0}: command not found` }
      : null;
  }
  const file = resolve(cwd, argv0);
  if (!existsSync(file)) return { code: 127, error: `${argv0}: command not found` };
  try {
    if (statSync(file).isDirectory()) throw new Error("is a directory");
    accessSync(file, constants.X_OK);
  } catch (e) {
    const why =
      (e as NodeJS.ErrnoException).code === "EACCES" ? "permission denied" : (e as Error).message;
    return { code: 126, error: `${argv0}: cannot execute: ${why}` };
  }
  return null;
}

/** True while any process is in the process group `pgid`. */
function pgroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** One exec's processes: its process group and, when there are groups, its own cgroup. */
export class ExecTree {
  /** The cgroup, or null (process group only). */
  readonly group: string | null;
  #groups: ExecGroups | null;
  #pid = 0;
  #stopping: Promise<void> | null = null;

  constructor(groups: ExecGroups | null) {
    this.#groups = groups;
    this.group = groups?.create() ?? null;
  }

  /** The argv to spawn: through the helper when it joins the group before exec. */
  wrap(argv: string[]): string[] {
    const helper = this.#groups?.helper;
    return this.group !== null && helper ? [helper, "-c", this.group, "--", ...argv] : argv;
  }

  /** After the spawn: remembers the leader; without a helper, moves it into the group. */
  attach(pid: number): void {
    this.#pid = pid;
    if (this.group !== null && !this.#groups?.helper) this.#groups?.join(this.group, pid);
  }

  /** Sends `sig` to the process group and to every member of the cgroup (escaped ones too). */
  signal(sig: NodeJS.Signals | number): void {
    if (this.#pid > 0) killGroup(this.#pid, sig);
    if (this.group === null || !this.#groups) return;
    for (const pid of this.#groups.pids(this.group)) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
  }

  /** Nothing of this exec is left running. */
  empty(): boolean {
    if (this.group !== null && this.#groups) return this.#groups.pids(this.group).length === 0;
    return this.#pid <= 0 || !pgroupAlive(this.#pid);
  }

  /** SIGKILLs all of it; resolves once the cgroup is empty (at once without one). */
  async kill(): Promise<void> {
    if (this.#pid > 0) killGroup(this.#pid, "SIGKILL");
    if (this.group !== null && this.#groups) await this.#groups.kill(this.group);
  }

  /**
   * `first` now (SIGTERM, SIGHUP), then SIGKILL to whatever is left after
   * `graceMs`; resolves once it is all gone. Calling it again returns the
   * same stop.
   */
  stop(first: NodeJS.Signals, graceMs: number): Promise<void> {
    this.#stopping ??= (async () => {
      this.signal(first);
      const end = Date.now() + graceMs;
      while (Date.now() < end && !this.empty()) await Bun.sleep(Math.min(50, graceMs));
      await this.kill();
    })().catch(() => {});
    return this.#stopping;
  }

  /** A stop was started (stop()). */
  get stopping(): Promise<void> | null {
    return this.#stopping;
  }

  /** Removes the cgroup once empty; a group that still has processes (background children of a finished command) stays and is swept later. */
  release(): void {
    if (this.group !== null) this.#groups?.remove(this.group);
  }
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
  groups: ExecGroups | null = null,
): ExecHandle {
  const tree = new ExecTree(groups);
  const started = spawnExec(spawn, req, tree);
  if ("exit" in started) {
    tree.release();
    return exitOnly(started.exit);
  }
  tree.attach(started.proc.pid);
  if (req.stdin !== undefined) feedStdin(started.proc, req.stdin);
  const run = new ExecOutput(started.proc, tree, tuning, req.timeout_ms);
  return { stream: run.stream, done: run.done };
}

/** A pipe-connected exec child. */
type ExecProcess = Subprocess<"pipe" | "ignore", "pipe", "pipe">;

/**
 * Spawns the command in `tree` (through the exec helper when there is one),
 * or says why it cannot run (127, 126) as the exit to report.
 */
function spawnExec(
  spawn: SpawnFn,
  req: ExecRequest,
  tree: ExecTree,
): { proc: ExecProcess } | { exit: ExecExit } {
  const argv0 = req.argv[0] as string;
  const cwd = req.cwd ?? "/";
  const env = execEnv(req.env);
  const argv = tree.wrap(req.argv);
  if (argv !== req.argv) {
    const bad = commandError(argv0, cwd, env.PATH ?? "");
    if (bad) return { exit: bad };
  }
  try {
    const proc = spawn(argv, {
      cwd,
      env,
      stdin: req.stdin !== undefined ? "pipe" : "ignore",
      stdout: "pipe",
      stderr: "pipe",
      // Its own session and process group, so a timeout can stop everything it started.
      detached: true,
    }) as ExecProcess;
    return { proc };
  } catch (e) {
    return { exit: spawnErrorExit(argv0, e) };
  }
}

/** The answer of an exec that never ran: one exit frame. */
function exitOnly(exit: ExecExit): ExecHandle {
  return {
    stream: new ReadableStream({
      start(c) {
        c.enqueue(encodeExit(exit));
        c.close();
      },
    }),
    done: Promise.resolve(exit),
  };
}

/** Writes the whole base64 `stdin`, then closes; a child that does not read gets EPIPE, which is fine. */
function feedStdin(proc: ExecProcess, stdin: string): void {
  const sink = proc.stdin;
  if (!sink || typeof sink === "number") return;
  const data = Buffer.from(stdin, "base64");
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

/**
 * One running exec's output: stdout and stderr pumped into one framed
 * stream, then the exit frame. Backpressure: a pipe is read only when the
 * consumer has pulled what came before (desiredSize > 0). A timeout stops
 * the exec (`timed_out`, code 124); a consumer that goes away (cancel) stops
 * it too. After the process exits, a pipe that stays silent for
 * `drainIdleMs` is held by a background child and is no longer read.
 */
class ExecOutput {
  readonly stream: ReadableStream<Uint8Array>;
  readonly done: Promise<ExecExit>;
  #resolveDone!: (x: ExecExit) => void;
  #controller!: ReadableStreamDefaultController<Uint8Array>;
  #waiters = new Set<() => void>();
  #cancelled = false;
  #timedOut = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #exited = false;
  /** Resolves null once the process has exited. */
  #exitSignal: Promise<null>;

  constructor(
    private readonly proc: ExecProcess,
    private readonly tree: ExecTree,
    private readonly tuning: ExecTuning,
    timeoutMs: number | undefined,
  ) {
    this.done = new Promise<ExecExit>((r) => {
      this.#resolveDone = r;
    });
    if (timeoutMs !== undefined) {
      this.#timer = setTimeout(() => {
        this.#timedOut = true;
        void tree.stop("SIGTERM", tuning.killGraceMs);
      }, timeoutMs);
    }
    this.#exitSignal = proc.exited.then(
      () => null,
      () => null,
    );
    this.stream = new ReadableStream<Uint8Array>(
      {
        start: (c) => {
          this.#controller = c;
          void this.#run();
        },
        pull: () => this.#wakeAll(),
        cancel: () => this.#cancel(),
      },
      // Up to ~1 MiB of frames queued before the pipes are left unread.
      { highWaterMark: 1024 * 1024, size: (chunk) => chunk?.byteLength ?? 0 },
    );
  }

  /** Pumps both pipes, waits for the process (and, after a stop, all of it), sends the exit. */
  async #run(): Promise<void> {
    const pumps = Promise.all([
      this.#pump(this.proc.stdout, CH_STDOUT),
      this.#pump(this.proc.stderr, CH_STDERR),
    ]);
    await Promise.all([pumps, this.proc.exited.catch(() => null)]);
    if (this.#timer) clearTimeout(this.#timer);
    // A stopped exec is over when all of it is gone, escaped children included.
    await this.tree.stopping;
    this.tree.release();
    const p = this.proc;
    const base = exitCodeOf(p.exitCode, p.signalCode ? String(p.signalCode) : null);
    const exit: ExecExit = this.#timedOut ? { ...base, code: TIMEOUT_CODE, timed_out: true } : base;
    this.#resolveDone(exit);
    if (this.#cancelled) return;
    try {
      this.#controller.enqueue(encodeExit(exit));
      this.#controller.close();
    } catch {
      // the consumer went away meanwhile
    }
  }

  /** Copies one pipe into frames of `channel` until EOF, a cancel, or a silent pipe after the exit. */
  async #pump(src: ReadableStream<Uint8Array>, channel: number): Promise<void> {
    const reader = src.getReader();
    // One read may outlive a race (with the exit or the idle timer): keep it, never lose its data.
    let pending: ReturnType<typeof reader.read> | null = null;
    try {
      for (;;) {
        await this.#room();
        if (this.#cancelled) break;
        pending ??= reader.read();
        const res = await this.#settle(pending);
        if (res === "exited") continue;
        if (res === "idle") break;
        pending = null;
        if (res.done) break;
        this.#enqueue(channel, res.value);
      }
    } catch {
      // pipe error: the exit is still reported
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  /**
   * Waits for `pending` while the process runs, or learns it has exited
   * ("exited": the caller waits again, with the drain limit); after the
   * exit, waits at most `drainIdleMs` ("idle": stop reading).
   */
  async #settle<T>(pending: Promise<T>): Promise<T | "exited" | "idle"> {
    if (!this.#exited) {
      const r = await Promise.race([pending, this.#exitSignal]);
      if (r !== null) return r;
      this.#exited = true;
      return "exited";
    }
    const idle = Bun.sleep(this.tuning.drainIdleMs).then(() => null);
    return (await Promise.race([pending, idle])) ?? "idle";
  }

  /** Queues `chunk` as frames of at most `maxChunk` bytes. */
  #enqueue(channel: number, chunk: Uint8Array): void {
    let rest = chunk;
    while (rest.byteLength > 0) {
      const part = rest.subarray(0, this.tuning.maxChunk);
      rest = rest.subarray(part.byteLength);
      if (this.#cancelled) break;
      this.#controller.enqueue(encodeFrame(channel, part));
    }
  }

  /** Resolves once the consumer has room (or has gone away). */
  async #room(): Promise<void> {
    while (!this.#cancelled && (this.#controller.desiredSize ?? 0) <= 0) {
      await new Promise<void>((r) => this.#waiters.add(r));
    }
  }

  #wakeAll(): void {
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  /** The client disconnected: stop the command (and everything it started). */
  #cancel(): void {
    this.#cancelled = true;
    this.#wakeAll();
    if (this.#timer) clearTimeout(this.#timer);
    if (this.proc.exitCode === null && this.proc.signalCode === null)
      void this.tree.stop("SIGTERM", this.tuning.killGraceMs).then(() => this.tree.release());
  }
}

// ---- interactive exec over a WebSocket (PTY) -------------------------------------

/** Data attached to an exec WebSocket at upgrade time. */
export interface ExecWsData {
  kind: "hero-agent-exec";
  ip: string;
  proc?: Subprocess;
  tree?: ExecTree;
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
  /** One group per session (cgroups in PID 1), or null: the process group only. */
  groups?: ExecGroups | null;
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
  const env: Record<string, string> = { TERM: "xterm-256color", ...execEnv(start.env) };
  const tree = new ExecTree(o.groups ?? null);
  const argv = tree.wrap(start.argv);
  if (argv !== start.argv) {
    const bad = commandError(start.argv[0] as string, cwd, env.PATH ?? "");
    if (bad) {
      tree.release();
      finish(ws, o, bad);
      return;
    }
  }
  try {
    proc = o.spawn(argv, {
      cwd,
      env,
      terminal: {
        cols: start.cols,
        rows: start.rows,
        data: (_t, bytes) => {
          // A client that stops reading is dropped rather than buffered without bound.
          if (ws.getBufferedAmount() > 8 * 1024 * 1024) {
            void tree.kill();
            try {
              ws.close(1008, "client too slow");
            } catch {}
          } else ws.sendBinary(bytes);
        },
        exit: () => ptyClosed(),
      },
    });
  } catch (e) {
    tree.release();
    finish(ws, o, spawnErrorExit(start.argv[0] as string, e));
    return;
  }
  tree.attach(proc.pid);
  ws.data.proc = proc;
  ws.data.tree = tree;
  o.log(`exec (tty) ${start.argv[0]} for ${ws.data.ip}`);
  proc.exited.then(
    async () => {
      // Output written just before exit may still be in the PTY: wait for its EOF (bounded).
      await Promise.race([ptyDone, Bun.sleep(500)]);
      try {
        proc.terminal?.close();
      } catch {}
      // A hung-up session is over when all of it is gone (see close()).
      await tree.stopping;
      tree.release();
      finish(ws, o, exitCodeOf(proc.exitCode, proc.signalCode ? String(proc.signalCode) : null));
    },
    () => {
      tree.release();
      finish(ws, o, { code: 255, error: "lost track of the process" });
    },
  );
}

/** The Bun.serve websocket handler of GET exec/ws. Never throws. */
export function wsExecHandler(o: WsExecOptions) {
  return {
    maxPayloadLength: o.maxMessage ?? WS_LIMITS.maxPayloadLength,
    idleTimeout: WS_LIMITS.idleTimeout,
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
        // Hang up the session, SIGKILL what is left 2 s later (escaped children too, with a cgroup).
        if (p && p.exitCode === null && p.signalCode === null)
          void ws.data.tree?.stop("SIGHUP", 2000).then(() => ws.data.tree?.release());
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
