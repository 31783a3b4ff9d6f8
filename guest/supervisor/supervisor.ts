/**
 * The supervisor: services in, actions out. It keeps each service's target
 * and observed state, feeds events to the pure transition table (state.ts)
 * and performs the actions it returns: spawn, stop (waiting for the whole
 * cgroup to be empty, then cgroup.kill), readiness tests, restart with
 * backoff, dependency evaluation. It never throws into its callers' event
 * loop: every failure becomes a state with a reason.
 */
import { readFileSync } from "node:fs";
import type { InputError } from "../../lib/errors.ts";
import { log } from "../../lib/log.ts";
import { type ServiceSpec, SIGNALS, signalName } from "../../lib/service-spec.ts";
import { nextRestart, noHistory, type RestartHistory } from "./backoff.ts";
import { ensureGroup, groupPids, killGroup, removeGroup } from "./cgroup.ts";
import { findCycles, stopWaves, unmetDeps } from "./graph.ts";
import {
  createRing,
  droppedText,
  formatZinit,
  type LogFile,
  type LogRing,
  rotatingFile,
} from "./logs.ts";
import {
  type AdoptedProcess,
  adoptChild,
  type Child,
  type ExitInfo,
  spawnChild,
} from "./process.ts";
import { shellSplit } from "./shlex.ts";
import { type Event, type State, type Target, transition } from "./state.ts";

/** How long shutdown waits for log files to be written. */
const LOG_FLUSH_MS = 2000;
/** zinit polls the readiness test every 2 s. */
const TEST_INTERVAL_MS = 2000;
const DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** A supervised service. */
export interface Service {
  name: string;
  spec: ServiceSpec;
  target: Target;
  state: State;
  /** Why the service is in its state (exit status, error, blocking deps…). */
  reason: string;
  child: Child | null;
  /** Start time of the current process (ms). */
  startedAt: number | null;
  restarts: number;
  history: RestartHistory;
  lastExit: ExitInfo | null;
  /** Pid of the process that exited last (zinit shows it in Error states). */
  lastPid: number;
  /** Set when the service file is invalid: it is shown but never started. */
  configError: InputError | null;
  timers: { restart?: Timer; test?: Timer; kill?: Timer };
  stopWaiters: (() => void)[];
  /** The service's `log_file`, when it has one. */
  logFile?: LogFile;
}

/** A public snapshot of a service for status/list/UI. */
export interface ServiceStatus {
  name: string;
  pid: number;
  state: State;
  target: Target;
  reason: string;
  after: Record<string, State | "Unknown">;
  oneshot: boolean;
  restarts: number;
  uptimeMs: number | null;
  lastExit: ExitInfo | null;
  lastPid: number;
}

/** Thrown for requests the supervisor refuses; `code` maps to zinit's errors. */
export class SupervisorError extends Error {
  constructor(
    readonly code: "not-found" | "exists" | "is-up" | "shutting-down" | "config" | "bad-signal",
    message: string,
  ) {
    super(message);
  }
}

/** Options for a supervisor. */
export interface SupervisorOptions {
  ringSize?: number;
  /** Extra environment for every service (vm.toml [env]). */
  env?: Record<string, string>;
  /** Use cgroups (false outside a VM when not permitted). */
  cgroups?: boolean;
  /** Called when a service settles after an exit (used by job mode). */
  onExit?: (svc: Service, exit: ExitInfo, pid: number) => void;
  /**
   * Processes inherited from the previous hero-init (self-update): the
   * first start of a service of that name adopts its process instead of
   * spawning a new one.
   */
  adopt?: Map<string, AdoptedProcess>;
}

function readEnvironmentFile(): Record<string, string> {
  const out: Record<string, string> = {};
  let text = "";
  try {
    text = readFileSync("/etc/environment", "utf8");
  } catch {
    return out;
  }
  for (const raw of text.split("\n")) {
    const line = raw.trim().replace(/^export\s+/, "");
    const eq = line.indexOf("=");
    if (!line || line.startsWith("#") || eq <= 0) continue;
    out[line.slice(0, eq)] = line.slice(eq + 1).replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}

/** Creates a supervisor. */
export function createSupervisor(opts: SupervisorOptions = {}) {
  const services = new Map<string, Service>();
  const ring: LogRing = createRing(opts.ringSize ?? 2000);
  let shuttingDown = false;
  let cycleMembers = new Map<string, string>();

  const get = (name: string): Service => {
    const s = services.get(name);
    if (!s) throw new SupervisorError("not-found", `service "${name}" not found`);
    return s;
  };

  const alive = (s: Service) => s.child !== null;

  function dispatch(s: Service, event: Event): void {
    const t = transition(s.state, event, {
      oneshot: s.spec.oneshot,
      target: s.target,
      hasTest: !!s.spec.test,
      alive: alive(s),
    });
    if (t.ignored) return;
    if (t.state !== s.state)
      log.info(
        "supervisor",
        `${s.name}: ${s.state} → ${t.state}${t.reason ? ` (${t.reason})` : ""}`,
      );
    s.state = t.state;
    if (t.reason !== undefined) s.reason = t.reason;
    else if (t.state === "Running" || t.state === "Spawned" || t.state === "Success") s.reason = "";
    for (const a of t.actions) {
      switch (a.type) {
        case "spawn":
          doSpawn(s);
          break;
        case "kill":
          doKill(s);
          break;
        case "startTest":
          doTest(s);
          break;
        case "scheduleRestart":
          doScheduleRestart(s);
          break;
        case "notifyDependents":
          queueMicrotask(evaluate);
          break;
      }
    }
  }

  function serviceEnv(s: Service): Record<string, string> {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) base[k] = v;
    delete base.LD_LIBRARY_PATH; // never leak a loader path into services
    return {
      PATH: DEFAULT_PATH,
      ...base,
      ...readEnvironmentFile(),
      ...(opts.env ?? {}),
      ...s.spec.env,
    };
  }

  function onOutput(s: Service) {
    const mode = s.spec.log;
    return (stream: "stdout" | "stderr", text: string) => {
      const line = ring.push(s.name, stream, text);
      s.logFile?.write(`${new Date(line.time).toISOString()} ${formatZinit(line)}`);
      if (mode === "stdout") log.info(s.name, text);
    };
  }

  function doSpawn(s: Service): void {
    let argv: string[];
    try {
      argv = shellSplit(s.spec.exec);
      if (argv.length === 0) throw new Error("empty command");
    } catch (e) {
      dispatch(s, { type: "spawnFailed", reason: `exec: ${(e as Error).message}` });
      return;
    }
    const cgroup = opts.cgroups === false ? null : ensureGroup(s.name);
    const adopted = opts.adopt?.get(s.name);
    if (adopted) {
      opts.adopt?.delete(s.name);
      const child = adoptChild(adopted, s.spec.log === "none" ? null : onOutput(s));
      s.child = child;
      s.startedAt = child.startedAt;
      s.restarts = adopted.restarts;
      child.exited.then((exit) => onExit(s, child, exit));
      dispatch(s, { type: "spawned" });
      return;
    }
    try {
      const child = spawnChild({
        argv,
        env: serviceEnv(s),
        cwd: s.spec.dir,
        cgroup,
        onLine: s.spec.log === "none" ? null : onOutput(s),
        uid: s.spec.uid,
        gid: s.spec.gid,
      });
      s.child = child;
      s.startedAt = child.startedAt;
      child.exited.then((exit) => onExit(s, child, exit));
      dispatch(s, { type: "spawned" });
    } catch (e) {
      dispatch(s, {
        type: "spawnFailed",
        reason: `cannot start ${argv[0]}: ${(e as Error).message}`,
      });
      // Shell convention for what could not be executed: 127 not found, 126 otherwise.
      const code = (e as NodeJS.ErrnoException).code === "ENOENT" ? 127 : 126;
      opts.onExit?.(s, { code, signal: null }, 0);
    }
  }

  function onExit(s: Service, child: Child, exit: ExitInfo): void {
    if (s.child !== child) return;
    s.child = null;
    clearTimeout(s.timers.test);
    const ranMs = Date.now() - child.startedAt;
    s.lastExit = exit;
    s.lastPid = child.pid;
    // Whatever the main process left in its group belongs to the dead instance.
    const leftovers = groupPids(s.name);
    if (leftovers.length && s.target === "Up") killGroup(s.name);
    // 126/127: the command could not run; the helper's message says why (e.g. "cannot exec … No such file").
    const detail =
      exit.code === 126 || exit.code === 127
        ? ring
            .since(0, s.name)
            .filter((l) => l.stream === "stderr")
            .at(-1)?.text
        : undefined;
    dispatch(s, { type: "exited", code: exit.code, signal: exit.signal, ranMs, detail });
    if (s.target === "Down") void finishStop(s);
    opts.onExit?.(s, exit, child.pid);
  }

  /** Resolves stop waiters once the whole cgroup is empty (or killed after the deadline). */
  async function finishStop(s: Service): Promise<void> {
    const deadline = Date.now() + s.spec.shutdown_timeout * 1000;
    while (groupPids(s.name).length && Date.now() < deadline) await Bun.sleep(50);
    if (groupPids(s.name).length) {
      log.warn(
        "supervisor",
        `${s.name}: processes left in its cgroup after stop: killing the tree`,
      );
      killGroup(s.name);
      const end = Date.now() + 5000;
      while (groupPids(s.name).length && Date.now() < end) await Bun.sleep(50);
    }
    clearTimeout(s.timers.kill);
    removeGroup(s.name);
    const waiters = s.stopWaiters.splice(0);
    for (const w of waiters) w();
  }

  function doKill(s: Service): void {
    const sig = SIGNALS[signalName(s.spec.signal.stop) ?? "SIGTERM"] ?? 15;
    s.child?.signal(sig);
    // Escaped members of the group (setsid'd daemons) get the stop signal too.
    for (const pid of groupPids(s.name)) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    }
    clearTimeout(s.timers.kill);
    s.timers.kill = setTimeout(() => {
      if (!s.child && groupPids(s.name).length === 0) return;
      log.warn(
        "supervisor",
        `${s.name}: still running ${s.spec.shutdown_timeout} s after stop signal: SIGKILL`,
      );
      if (!killGroup(s.name)) s.child?.signal(9);
    }, s.spec.shutdown_timeout * 1000);
  }

  function doTest(s: Service): void {
    const child = s.child;
    let argv: string[];
    try {
      argv = shellSplit(s.spec.test ?? "");
    } catch (e) {
      dispatch(s, { type: "testError", reason: `test: ${(e as Error).message}` });
      return;
    }
    const attempt = () => {
      if (s.child !== child || s.state !== "Spawned" || s.target !== "Up") return;
      let probe: Child;
      try {
        probe = spawnChild({
          argv,
          env: serviceEnv(s),
          cwd: s.spec.dir,
          cgroup: null,
          onLine: null,
        });
      } catch (e) {
        dispatch(s, {
          type: "testError",
          reason: `test: cannot run ${argv[0]}: ${(e as Error).message}`,
        });
        return;
      }
      probe.exited.then((r) => {
        if (s.child !== child) return;
        if (r.code === 0) dispatch(s, { type: "testPassed" });
        else s.timers.test = setTimeout(attempt, TEST_INTERVAL_MS);
      });
    };
    attempt();
  }

  function doScheduleRestart(s: Service): void {
    if (shuttingDown) return;
    const ranMs = s.startedAt === null ? 0 : Date.now() - s.startedAt;
    const d = nextRestart(s.spec.restart, s.history, Date.now(), ranMs);
    s.history = d.history;
    if (d.giveUp) {
      log.error("supervisor", `${s.name}: ${d.reason}`);
      dispatch(s, { type: "giveUp", reason: `${d.reason}; last: ${s.reason}` });
      return;
    }
    clearTimeout(s.timers.restart);
    s.timers.restart = setTimeout(() => {
      if (s.target !== "Up" || alive(s) || shuttingDown) return;
      s.restarts++;
      dispatch(s, { type: "restartDue" });
      evaluate();
    }, d.delayMs);
  }

  /** Starts every Blocked/Unknown service whose dependencies are met. */
  function evaluate(): void {
    if (shuttingDown) return;
    for (const s of services.values()) {
      if (s.target !== "Up" || alive(s) || s.configError) continue;
      if (s.state !== "Blocked" && s.state !== "Unknown") continue;
      const cyc = cycleMembers.get(s.name);
      if (cyc) {
        s.state = "Blocked";
        s.reason = cyc;
        continue;
      }
      const { missing, waiting } = unmetDeps(s.spec.after, (n) => {
        const d = services.get(n);
        return d ? { state: d.state, oneshot: d.spec.oneshot } : undefined;
      });
      if (missing.length || waiting.length) {
        if (s.state !== "Blocked") dispatch(s, { type: "depsBlocked" });
        s.reason = [
          missing.length ? `waiting for undefined ${missing.join(", ")}` : "",
          waiting.length ? `waiting for ${waiting.join(", ")}` : "",
        ]
          .filter(Boolean)
          .join("; ");
        continue;
      }
      dispatch(s, { type: "depsReady" });
    }
  }

  function recomputeCycles(): void {
    const deps = new Map([...services.values()].map((s) => [s.name, s.spec.after] as const));
    cycleMembers = new Map();
    for (const cyc of findCycles(deps)) {
      const text = `dependency cycle: ${[...cyc, cyc[0]].join(" → ")}`;
      for (const n of cyc) cycleMembers.set(n, text);
      log.error("supervisor", text);
    }
  }

  function makeService(name: string, spec: ServiceSpec, configError: InputError | null): Service {
    const s: Service = {
      name,
      spec,
      target: configError ? "Down" : "Up",
      state: configError ? "Error" : "Unknown",
      reason: configError ? `config: ${configError.toString()}` : "",
      child: null,
      startedAt: null,
      restarts: 0,
      history: noHistory(),
      lastExit: null,
      lastPid: 0,
      configError,
      timers: {},
      stopWaiters: [],
    };
    if (spec.log_file) {
      const lf = spec.log_file;
      // Written asynchronously through a bounded queue: a fast writer loses lines
      // (counted, marked in the file), never PID 1's time.
      s.logFile = rotatingFile(
        lf.path ?? `/var/log/hero/${name}.log`,
        lf.max_size,
        lf.keep,
        (m) => log.warn(name, `log_file: ${m}`),
        { marker: (n) => `${new Date().toISOString()} ${droppedText(n)}` },
      );
    }
    return s;
  }

  const api = {
    ring,
    /** Adds a service and starts watching it (zinit `monitor`). */
    monitor(name: string, spec: ServiceSpec): void {
      if (shuttingDown) throw new SupervisorError("shutting-down", "system is shutting down");
      if (services.has(name))
        throw new SupervisorError("exists", `service "${name}" already monitored`);
      const s = makeService(name, spec, null);
      services.set(name, s);
      recomputeCycles();
      dispatch(s, { type: "monitor" });
      evaluate();
    },
    /** Shows an invalid service file as a service in Error (never started). */
    addBroken(name: string, error: InputError): void {
      if (services.has(name)) return;
      services.set(
        name,
        makeService(
          name,
          {
            exec: "",
            test: "",
            oneshot: false,
            after: [],
            signal: { stop: "sigterm" },
            log: "ring",
            env: {},
            dir: "/",
            shutdown_timeout: 10,
            restart: { delay: 100, max_delay: 30000, reset_after: 10, limit: 10, window: 60 },
          },
          error,
        ),
      );
      log.error("supervisor", `${name}: ${error.toString()}`);
    },
    /** Sets target Up and starts (zinit `start`). */
    start(name: string): void {
      if (shuttingDown) throw new SupervisorError("shutting-down", "system is shutting down");
      const s = get(name);
      if (s.configError)
        throw new SupervisorError(
          "config",
          `service "${name}" has an invalid file: ${s.configError.toString()}`,
        );
      s.target = "Up";
      s.history = noHistory();
      if (alive(s)) return;
      dispatch(s, { type: "start" });
      evaluate();
    },
    /** Sets target Down, stops the process tree, resolves when the cgroup is empty. */
    stop(name: string): Promise<void> {
      const s = get(name);
      s.target = "Down";
      clearTimeout(s.timers.restart);
      clearTimeout(s.timers.test);
      if (!alive(s)) {
        if (groupPids(s.name).length === 0) return Promise.resolve();
        const p = new Promise<void>((r) => s.stopWaiters.push(r));
        doKill(s);
        void finishStop(s);
        return p;
      }
      const p = new Promise<void>((r) => s.stopWaiters.push(r));
      dispatch(s, { type: "stop" });
      return p;
    },
    /** Sends a signal to the service's process group; target stays Up (zinit `kill`). */
    kill(name: string, sig: string): void {
      const s = get(name);
      const n = signalName(sig);
      if (!n) throw new SupervisorError("bad-signal", `unknown signal "${sig}"`);
      if (!s.child) throw new SupervisorError("not-found", `service "${name}" is not running`);
      s.child.signal(SIGNALS[n] as number);
    },
    /** Stops watching a service; it must be Down and not running (zinit `forget`). */
    forget(name: string): void {
      const s = get(name);
      if (s.target === "Up" && !s.configError)
        throw new SupervisorError("is-up", `service "${name}" is up; stop it first`);
      if (alive(s)) throw new SupervisorError("is-up", `service "${name}" is still running`);
      services.delete(name);
      recomputeCycles();
    },
    /** zinit `restart`: stop (waiting), then start. */
    async restart(name: string): Promise<void> {
      await api.stop(name);
      api.start(name);
    },
    /** A service's status. */
    status(name: string): ServiceStatus {
      const s = get(name);
      const after: Record<string, State | "Unknown"> = {};
      for (const d of s.spec.after) after[d] = services.get(d)?.state ?? "Unknown";
      return {
        name: s.name,
        pid: s.child?.pid ?? 0,
        state: s.state,
        target: s.target,
        reason: s.reason,
        after,
        oneshot: s.spec.oneshot,
        restarts: s.restarts,
        uptimeMs: s.child && s.startedAt ? Date.now() - s.startedAt : null,
        lastExit: s.lastExit,
        lastPid: s.lastPid,
      };
    },
    /** Names, sorted. */
    names(): string[] {
      return [...services.keys()].sort();
    },
    /** The service record (for the control API's service_get). */
    service(name: string): Service {
      return get(name);
    },
    has(name: string): boolean {
      return services.has(name);
    },
    isShuttingDown: () => shuttingDown,
    /**
     * Stops everything: dependents before their dependencies, each wave in
     * parallel within its services' shutdown_timeout. New starts are refused.
     */
    async shutdownAll(): Promise<void> {
      shuttingDown = true;
      for (const s of services.values()) clearTimeout(s.timers.restart);
      const deps = new Map([...services.values()].map((s) => [s.name, s.spec.after] as const));
      for (const wave of stopWaves(deps)) {
        const running = wave.filter((n) => {
          const s = services.get(n);
          return s && (alive(s) || groupPids(n).length > 0);
        });
        if (running.length === 0) continue;
        log.info("shutdown", `stopping ${running.join(", ")}`);
        await Promise.all(running.map((n) => api.stop(n)));
      }
      // The services' last lines reach their log files, unless a disk hangs.
      const flushed = Promise.all([...services.values()].map((s) => s.logFile?.flush()));
      await Promise.race([flushed, Bun.sleep(LOG_FLUSH_MS)]);
    },
  };
  return api;
}

/** A supervisor instance. */
export type Supervisor = ReturnType<typeof createSupervisor>;
