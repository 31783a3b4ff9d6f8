/**
 * The supervisor: services in, actions out. Three parts, read in this order:
 * - the dispatch (here): every state change is an event fed to the pure
 *   transition table (state.ts); `dispatch` applies the result and hands
 *   the actions to the effects;
 * - dependency evaluation (graph.ts `depsEvent`, pure): for each service
 *   waiting to start, the event its dependencies call for (go, wait, cycle);
 * - the effects (effects.ts): spawn, stop (waiting for the whole cgroup to
 *   be empty, then cgroup.kill), readiness tests, restart with backoff, all
 *   through the SupervisorSystem (system.ts) a test can replace.
 * Below them the public API: the `Supervisor` object the control socket,
 * the UI, PID 1 and the agent use. It never throws into its callers' event
 * loop: every failure becomes a state with a reason.
 */
import { HeroError } from "../../lib/errors.ts";
import { log } from "../../lib/log.ts";
import { type ServiceSpec, SIGNALS, signalName } from "../../lib/service-spec.ts";
import { noHistory } from "./backoff.ts";
import { createEffects, type Effects } from "./effects.ts";
import { cycleReasons, depsEvent, stopWaves } from "./graph.ts";
import { createRing, droppedText, type LogRing, rotatingFile } from "./logs.ts";
import {
  brokenSpec,
  newService,
  type Service,
  type ServiceStatus,
  type SupervisorOptions,
} from "./service.ts";
import { type Event, type State, transition } from "./state.ts";
import { realSystem, type SupervisorSystem } from "./system.ts";

export type {
  Service,
  ServiceStatus,
  SupervisorOptions,
  TraceEntry,
} from "./service.ts";

/** How long shutdown waits for log files to be written. */
const LOG_FLUSH_MS = 2000;

/** The supervisor's state: the services and what acts on them. */
interface Core {
  readonly opts: SupervisorOptions;
  readonly sys: SupervisorSystem;
  readonly ring: LogRing;
  readonly services: Map<string, Service>;
  readonly fx: Effects;
  shuttingDown: boolean;
  /** Members of dependency cycles → the cycle's text. */
  cycles: Map<string, string>;
}

function createCore(opts: SupervisorOptions): Core {
  const sys = opts.system ?? realSystem();
  const ring = createRing(opts.ringSize ?? 2000);
  const core: Core = {
    opts,
    sys,
    ring,
    services: new Map(),
    shuttingDown: false,
    cycles: new Map(),
    fx: createEffects({
      sys,
      opts,
      ring,
      dispatch: (s, e) => dispatch(core, s, e),
      evaluate: () => evaluate(core),
      shuttingDown: () => core.shuttingDown,
    }),
  };
  return core;
}

/** Feeds one event to the state table, records the change, performs the actions. */
function dispatch(core: Core, s: Service, event: Event): void {
  const t = transition(s.state, event, {
    oneshot: s.spec.oneshot,
    target: s.target,
    hasTest: !!s.spec.test,
    notify: s.spec.notify === true,
    periodic: s.spec.every !== undefined,
    alive: s.child !== null,
  });
  if (t.ignored) return;
  const from = s.state;
  if (t.state !== from)
    log.info("supervisor", `${s.name}: ${from} → ${t.state}${t.reason ? ` (${t.reason})` : ""}`);
  s.state = t.state;
  if (t.reason !== undefined) s.reason = t.reason;
  else if (t.state === "Running" || t.state === "Spawned" || t.state === "Success") s.reason = "";
  core.opts.trace?.({ service: s.name, event, from, to: t.state, reason: s.reason });
  for (const a of t.actions) {
    if (a.type === "spawn") core.fx.spawn(s);
    else if (a.type === "kill") core.fx.kill(s);
    else if (a.type === "startTest") core.fx.startTest(s);
    else if (a.type === "scheduleRestart") core.fx.scheduleRestart(s);
    else if (a.type === "scheduleRun") core.fx.scheduleRun(s);
    else if (a.type === "notifyDependents") queueMicrotask(() => evaluate(core));
  }
}

/** Feeds every service waiting to start its dependencies' verdict (graph.ts). */
function evaluate(core: Core): void {
  if (core.shuttingDown) return;
  const lookup = (n: string) => {
    const d = core.services.get(n);
    return d ? { state: d.state, oneshot: d.spec.oneshot } : undefined;
  };
  for (const s of core.services.values()) {
    const event = depsEvent(
      {
        target: s.target,
        state: s.state,
        alive: s.child !== null,
        broken: s.configError !== null,
        after: s.spec.after,
      },
      core.cycles.get(s.name),
      lookup,
    );
    if (event) dispatch(core, s, event);
  }
}

function recomputeCycles(core: Core): void {
  const deps = new Map([...core.services.values()].map((s) => [s.name, s.spec.after] as const));
  core.cycles = cycleReasons(deps);
  for (const text of new Set(core.cycles.values())) log.error("supervisor", text);
}

function get(core: Core, name: string): Service {
  const s = core.services.get(name);
  if (!s) throw new HeroError("supervisor.not-found", `service "${name}" not found`);
  return s;
}

/** A new record, with its `log_file` writer when it has one. */
function makeService(name: string, spec: ServiceSpec): Service {
  const s = newService(name, spec);
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

function monitor(core: Core, name: string, spec: ServiceSpec): void {
  if (core.shuttingDown) throw new HeroError("supervisor.shutting-down", "system is shutting down");
  if (core.services.has(name))
    throw new HeroError("supervisor.exists", `service "${name}" already monitored`);
  const s = makeService(name, spec);
  core.services.set(name, s);
  recomputeCycles(core);
  dispatch(core, s, { type: "monitor" });
  evaluate(core);
}

function addBroken(core: Core, name: string, error: HeroError): void {
  if (core.services.has(name)) return;
  const s = makeService(name, brokenSpec());
  s.configError = error;
  s.target = "Down";
  core.services.set(name, s);
  log.error("supervisor", `${name}: ${error.toString()}`);
  dispatch(core, s, { type: "configError", reason: `config: ${error.toString()}` });
}

function start(core: Core, name: string): void {
  if (core.shuttingDown) throw new HeroError("supervisor.shutting-down", "system is shutting down");
  const s = get(core, name);
  if (s.configError)
    throw new HeroError(
      "supervisor.config",
      `service "${name}" has an invalid file: ${s.configError.toString()}`,
    );
  s.target = "Up";
  s.history = noHistory();
  if (s.child !== null) return;
  dispatch(core, s, { type: "start" });
  evaluate(core);
}

/** A promise resolved when the service's stop has finished (finishStop). */
function stopped(s: Service): Promise<void> {
  return new Promise<void>((r) => s.stopWaiters.push(r));
}

function stop(core: Core, name: string): Promise<void> {
  const s = get(core, name);
  const { clock, groups } = core.sys;
  s.target = "Down";
  clock.clearTimeout(s.timers.restart);
  clock.clearTimeout(s.timers.test);
  if (s.child === null) {
    // No process, but maybe escaped members of its group: stop those (no state change).
    if (groups.pids(s.name).length === 0) return Promise.resolve();
    const p = stopped(s);
    core.fx.kill(s);
    void core.fx.finishStop(s);
    return p;
  }
  const p = stopped(s);
  dispatch(core, s, { type: "stop" });
  return p;
}

function kill(core: Core, name: string, sig: string): void {
  const s = get(core, name);
  const n = signalName(sig);
  if (!n) throw new HeroError("supervisor.bad-signal", `unknown signal "${sig}"`);
  if (!s.child) throw new HeroError("supervisor.is-down", `service "${name}" is not running`);
  s.child.signal(SIGNALS[n] as number);
}

function forget(core: Core, name: string): void {
  const s = get(core, name);
  if (s.target === "Up" && !s.configError)
    throw new HeroError("supervisor.is-up", `service "${name}" is up; stop it first`);
  if (s.child !== null)
    throw new HeroError("supervisor.is-up", `service "${name}" is still running`);
  core.services.delete(name);
  recomputeCycles(core);
}

function status(core: Core, name: string): ServiceStatus {
  const s = get(core, name);
  const after: Record<string, State | "Unknown"> = {};
  for (const d of s.spec.after) after[d] = core.services.get(d)?.state ?? "Unknown";
  return {
    name: s.name,
    pid: s.child?.pid ?? 0,
    state: s.state,
    target: s.target,
    reason: s.reason,
    after,
    oneshot: s.spec.oneshot,
    restarts: s.restarts,
    uptimeMs: s.child && s.startedAt ? core.sys.clock.now() - s.startedAt : null,
    lastExit: s.lastExit,
    lastPid: s.lastPid,
  };
}

async function shutdownAll(core: Core, stopOne: (name: string) => Promise<void>): Promise<void> {
  const { clock, groups } = core.sys;
  core.shuttingDown = true;
  for (const s of core.services.values()) clock.clearTimeout(s.timers.restart);
  const deps = new Map([...core.services.values()].map((s) => [s.name, s.spec.after] as const));
  for (const wave of stopWaves(deps)) {
    const running = wave.filter((n) => {
      const s = core.services.get(n);
      return s && (s.child !== null || groups.pids(n).length > 0);
    });
    if (running.length === 0) continue;
    log.info("shutdown", `stopping ${running.join(", ")}`);
    await Promise.all(running.map(stopOne));
  }
  // The services' last lines reach their log files, unless a disk hangs.
  const flushed = Promise.all([...core.services.values()].map((s) => s.logFile?.flush()));
  await Promise.race([flushed, clock.sleep(LOG_FLUSH_MS)]);
}

/** What PID 1, the control socket, the UI and the agent use. */
export interface Supervisor {
  /** Every service's output lines. */
  ring: LogRing;
  /** Adds a service and starts watching it (zinit `monitor`). */
  monitor(name: string, spec: ServiceSpec): void;
  /** Shows an invalid service file as a service in Error (never started). */
  addBroken(name: string, error: HeroError): void;
  /** Sets target Up and starts (zinit `start`). */
  start(name: string): void;
  /** Sets target Down, stops the process tree, resolves when the cgroup is empty. */
  stop(name: string): Promise<void>;
  /** Sends a signal to the service's process group; target stays Up (zinit `kill`). */
  kill(name: string, sig: string): void;
  /** Stops watching a service; it must be Down and not running (zinit `forget`). */
  forget(name: string): void;
  /** zinit `restart`: stop (waiting), then start. */
  restart(name: string): Promise<void>;
  /** A service's status. */
  status(name: string): ServiceStatus;
  /** Names, sorted. */
  names(): string[];
  /** The service record (for the control API's service_get). */
  service(name: string): Service;
  has(name: string): boolean;
  isShuttingDown(): boolean;
  /**
   * Stops everything: dependents before their dependencies, each wave in
   * parallel within its services' shutdown_timeout. New starts are refused.
   */
  shutdownAll(): Promise<void>;
}

/** Creates a supervisor. */
export function createSupervisor(opts: SupervisorOptions = {}): Supervisor {
  const core = createCore(opts);
  const sup: Supervisor = {
    ring: core.ring,
    monitor: (name, spec) => monitor(core, name, spec),
    addBroken: (name, error) => addBroken(core, name, error),
    start: (name) => start(core, name),
    stop: (name) => stop(core, name),
    kill: (name, sig) => kill(core, name, sig),
    forget: (name) => forget(core, name),
    async restart(name) {
      await sup.stop(name);
      sup.start(name);
    },
    status: (name) => status(core, name),
    names: () => [...core.services.keys()].sort(),
    service: (name) => get(core, name),
    has: (name) => core.services.has(name),
    isShuttingDown: () => core.shuttingDown,
    shutdownAll: () => shutdownAll(core, (n) => sup.stop(n)),
  };
  return sup;
}
