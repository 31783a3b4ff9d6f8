/**
 * The supervisor's effects: what the state table's actions mean on the
 * machine (spawn, kill, readiness test, restart timer) and the end of a
 * stop (waiting for the whole cgroup to be empty). Each effect reports what
 * happened back as an event through `dispatch`; none throws into the
 * caller's event loop. Every touch of the machine goes through the
 * SupervisorSystem, so a test can run all of this against a fake one.
 */
import { log } from "../../lib/log.ts";
import { SIGNALS, signalName } from "../../lib/service-spec.ts";
import { nextRestart } from "./backoff.ts";
import { formatZinit, type LogRing } from "./logs.ts";
import { saysReady } from "./notify.ts";
import type { Child, ExitInfo, SpawnSpec } from "./process.ts";
import type { Service, SupervisorOptions } from "./service.ts";
import { shellSplit } from "./shlex.ts";
import type { Event } from "./state.ts";
import type { SupervisorSystem } from "./system.ts";

/** zinit polls the readiness test every 2 s. */
export const TEST_INTERVAL_MS = 2000;
/** How long a stop waits for the killed tree to vanish after the deadline's cgroup.kill. */
const KILL_GRACE_MS = 5000;
/** How often a stop looks at the cgroup while it waits for it to empty. */
const STOP_POLL_MS = 50;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** What the effects need from the supervisor around them. */
export interface EffectsContext {
  sys: SupervisorSystem;
  opts: SupervisorOptions;
  ring: LogRing;
  /** Feeds an event to the state table (and performs its actions). */
  dispatch(s: Service, e: Event): void;
  /** Re-runs dependency evaluation. */
  evaluate(): void;
  shuttingDown(): boolean;
}

/** The effects, one per action of the state table, plus the end of a stop. */
export interface Effects {
  spawn(s: Service): void;
  /** Sends the stop signal and arms the stop deadline (SIGKILL of the group). */
  kill(s: Service): void;
  startTest(s: Service): void;
  /** Arms the restart timer with the backoff delay, or gives up. */
  scheduleRestart(s: Service): void;
  /** Arms a periodic oneshot's next run (`every`). */
  scheduleRun(s: Service): void;
  /** Resolves the stop waiters once the whole cgroup is empty (killed after the deadline). */
  finishStop(s: Service): Promise<void>;
}

/** The effects bound to one supervisor. */
export function createEffects(ctx: EffectsContext): Effects {
  return {
    spawn: (s) => spawnService(ctx, s),
    kill: (s) => killService(ctx, s),
    startTest: (s) => startTest(ctx, s),
    scheduleRestart: (s) => scheduleRestart(ctx, s),
    scheduleRun: (s) => scheduleRun(ctx, s),
    finishStop: (s) => finishStop(ctx, s),
  };
}

function serviceEnv(ctx: EffectsContext, s: Service): Record<string, string> {
  return {
    PATH: DEFAULT_PATH,
    ...ctx.sys.environment(),
    ...(ctx.opts.env ?? {}),
    ...s.spec.env,
  };
}

/** zinit's line at the head of each run's output in the ring, on stderr (0.2.14 manager/mod.rs). */
export const START_MARKER = "------------ [start] ------------";

/** One line into the ring and the service's log file. */
function toRing(ctx: EffectsContext, s: Service, stream: "stdout" | "stderr", text: string): void {
  const line = ctx.ring.push(s.name, stream, text);
  s.logFile?.write(`${new Date(line.time).toISOString()} ${formatZinit(line)}`);
}

/**
 * Where a service's output lines go: `ring` into the ring and its log file;
 * `stdout` to our console and its log file, not the ring (as zinit). The last
 * stderr line is kept on the record either way (job mode reports it).
 */
function outputSink(ctx: EffectsContext, s: Service): SpawnSpec["onLine"] {
  if (s.spec.log === "none") return null;
  if (s.spec.log === "ring")
    return (stream, text) => {
      if (stream === "stderr") s.lastStderr = text;
      toRing(ctx, s, stream, text);
    };
  return (stream, text) => {
    if (stream === "stderr") s.lastStderr = text;
    const line = { seq: 0, time: Date.now(), service: s.name, stream, text };
    s.logFile?.write(`${new Date(line.time).toISOString()} ${formatZinit(line)}`);
    log.info(s.name, text);
  };
}

function spawnService(ctx: EffectsContext, s: Service): void {
  let argv: string[];
  try {
    argv = shellSplit(s.spec.exec);
    if (argv.length === 0) throw new Error("empty command");
  } catch (e) {
    ctx.dispatch(s, { type: "spawnFailed", reason: `exec: ${(e as Error).message}` });
    return;
  }
  const { sys, opts } = ctx;
  const cgroup = opts.cgroups === false ? null : sys.groups.ensure(s.name);
  const adopted = opts.adopt?.get(s.name);
  if (adopted) {
    opts.adopt?.delete(s.name);
    s.restarts = adopted.restarts;
    started(ctx, s, sys.adopt(adopted, outputSink(ctx, s)));
    // It said READY=1 to the previous hero-init already: ready as it was.
    if (s.spec.notify) ctx.dispatch(s, { type: "ready" });
    return;
  }
  let child: Child;
  s.lastStderr = undefined;
  try {
    const notify = openNotify(ctx, s);
    child = sys.spawn({
      argv,
      env: { ...serviceEnv(ctx, s), ...(notify ? { NOTIFY_SOCKET: notify } : {}) },
      cwd: s.spec.dir,
      cgroup,
      onLine: outputSink(ctx, s),
      uid: s.spec.uid,
      gid: s.spec.gid,
    });
  } catch (e) {
    closeNotify(s);
    ctx.dispatch(s, {
      type: "spawnFailed",
      reason: `cannot start ${argv[0]}: ${(e as Error).message}`,
    });
    // Shell convention for what could not be executed: 127 not found, 126 otherwise.
    const code = (e as NodeJS.ErrnoException).code === "ENOENT" ? 127 : 126;
    opts.onExit?.(s, { code, signal: null }, 0);
    return;
  }
  // zinit marks each run's start in the ring (not on an adopt: the run goes on).
  if (s.spec.log === "ring") toRing(ctx, s, "stderr", START_MARKER);
  started(ctx, s, child);
}

/**
 * Opens a `notify` service's NOTIFY_SOCKET for the run about to start; its
 * path, or undefined for a service without one. READY=1 from the running
 * process makes it ready (once: the socket is closed then).
 */
function openNotify(ctx: EffectsContext, s: Service): string | undefined {
  closeNotify(s);
  if (!s.spec.notify || s.spec.oneshot) return undefined;
  try {
    s.notify = ctx.sys.notifySocket(s.name, s.spec.uid, (text) => {
      if (!saysReady(text) || s.child === null) return;
      closeNotify(s);
      ctx.dispatch(s, { type: "ready" });
    });
  } catch (e) {
    throw new Error(`notify socket: ${(e as Error).message}`);
  }
  return s.notify.path;
}

function closeNotify(s: Service): void {
  s.notify?.close();
  s.notify = undefined;
}

function started(ctx: EffectsContext, s: Service, child: Child): void {
  s.child = child;
  s.startedAt = child.startedAt;
  child.exited.then((exit) => onExit(ctx, s, child, exit));
  ctx.dispatch(s, { type: "spawned" });
}

function onExit(ctx: EffectsContext, s: Service, child: Child, exit: ExitInfo): void {
  if (s.child !== child) return;
  const { sys } = ctx;
  s.child = null;
  closeNotify(s);
  sys.clock.clearTimeout(s.timers.test);
  const ranMs = sys.clock.now() - child.startedAt;
  s.lastExit = exit;
  s.lastPid = child.pid;
  // Whatever the main process left in its group belongs to the dead instance.
  if (sys.groups.pids(s.name).length && s.target === "Up") sys.groups.kill(s.name);
  // 126/127: the command could not run; the helper's message says why (e.g. "cannot exec … No such file").
  const detail = exit.code === 126 || exit.code === 127 ? s.lastStderr : undefined;
  ctx.dispatch(s, { type: "exited", code: exit.code, signal: exit.signal, ranMs, detail });
  if (s.target === "Down") void finishStop(ctx, s);
  ctx.opts.onExit?.(s, exit, child.pid);
}

/** Waits (polling) until the service's group is empty or the clock reaches `deadline`. */
async function groupEmptied(ctx: EffectsContext, name: string, deadline: number): Promise<void> {
  const { sys } = ctx;
  while (sys.groups.pids(name).length && sys.clock.now() < deadline)
    await sys.clock.sleep(STOP_POLL_MS);
}

async function finishStop(ctx: EffectsContext, s: Service): Promise<void> {
  const { sys } = ctx;
  await groupEmptied(ctx, s.name, sys.clock.now() + s.spec.shutdown_timeout * 1000);
  if (sys.groups.pids(s.name).length) {
    log.warn("supervisor", `${s.name}: processes left in its cgroup after stop: killing the tree`);
    sys.groups.kill(s.name);
    await groupEmptied(ctx, s.name, sys.clock.now() + KILL_GRACE_MS);
  }
  sys.clock.clearTimeout(s.timers.kill);
  sys.groups.remove(s.name);
  const waiters = s.stopWaiters.splice(0);
  for (const w of waiters) w();
}

function killService(ctx: EffectsContext, s: Service): void {
  const { sys } = ctx;
  const sig = SIGNALS[signalName(s.spec.signal.stop) ?? "SIGTERM"] ?? 15;
  s.child?.signal(sig);
  // Escaped members of the group (setsid'd daemons) get the stop signal too.
  for (const pid of sys.groups.pids(s.name)) sys.signal(pid, sig);
  sys.clock.clearTimeout(s.timers.kill);
  s.timers.kill = sys.clock.setTimeout(() => {
    if (!s.child && sys.groups.pids(s.name).length === 0) return;
    log.warn(
      "supervisor",
      `${s.name}: still running ${s.spec.shutdown_timeout} s after stop signal: SIGKILL`,
    );
    if (!sys.groups.kill(s.name)) s.child?.signal(9);
  }, s.spec.shutdown_timeout * 1000);
}

/** Runs the readiness test until it passes (every TEST_INTERVAL_MS) while this process is Spawned. */
function startTest(ctx: EffectsContext, s: Service): void {
  const { sys } = ctx;
  const child = s.child;
  let argv: string[];
  try {
    argv = shellSplit(s.spec.test ?? "");
  } catch (e) {
    ctx.dispatch(s, { type: "testError", reason: `test: ${(e as Error).message}` });
    return;
  }
  const attempt = () => {
    if (s.child !== child || s.state !== "Spawned" || s.target !== "Up") return;
    let probe: Child;
    try {
      probe = sys.spawn({
        argv,
        env: serviceEnv(ctx, s),
        cwd: s.spec.dir,
        cgroup: null,
        onLine: null,
      });
    } catch (e) {
      ctx.dispatch(s, {
        type: "testError",
        reason: `test: cannot run ${argv[0]}: ${(e as Error).message}`,
      });
      return;
    }
    probe.exited.then((r) => {
      if (s.child !== child) return;
      if (r.code === 0) ctx.dispatch(s, { type: "testPassed" });
      else s.timers.test = sys.clock.setTimeout(attempt, TEST_INTERVAL_MS);
    });
  };
  attempt();
}

function scheduleRestart(ctx: EffectsContext, s: Service): void {
  if (ctx.shuttingDown()) return;
  const { clock } = ctx.sys;
  const now = clock.now();
  const ranMs = s.startedAt === null ? 0 : now - s.startedAt;
  const d = nextRestart(s.spec.restart, s.history, now, ranMs);
  s.history = d.history;
  if (d.giveUp) {
    log.error("supervisor", `${s.name}: ${d.reason}`);
    ctx.dispatch(s, { type: "giveUp", reason: `${d.reason}; last: ${s.reason}` });
    return;
  }
  clock.clearTimeout(s.timers.restart);
  s.timers.restart = clock.setTimeout(() => {
    if (s.target !== "Up" || s.child !== null || ctx.shuttingDown()) return;
    s.restarts++;
    ctx.dispatch(s, { type: "restartDue" });
    ctx.evaluate();
  }, d.delayMs);
}

/**
 * A periodic oneshot's next run: at the first multiple of `every` after its
 * last start that is still ahead, so runs keep their cadence and never
 * overlap (a run longer than the period skips the slots it covered).
 */
export function nextRunDelay(everyMs: number, startedAt: number | null, now: number): number {
  if (startedAt === null || startedAt > now) return everyMs;
  const periods = Math.floor((now - startedAt) / everyMs) + 1;
  return startedAt + periods * everyMs - now;
}

function scheduleRun(ctx: EffectsContext, s: Service): void {
  if (ctx.shuttingDown() || s.spec.every === undefined) return;
  const { clock } = ctx.sys;
  clock.clearTimeout(s.timers.restart);
  const delay = nextRunDelay(s.spec.every * 1000, s.startedAt, clock.now());
  s.timers.restart = clock.setTimeout(() => {
    if (s.target !== "Up" || s.child !== null || ctx.shuttingDown()) return;
    ctx.dispatch(s, { type: "restartDue" });
    ctx.evaluate();
  }, delay);
}
