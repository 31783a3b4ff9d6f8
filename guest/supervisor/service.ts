/**
 * A supervised service's record and the supervisor's public types: what
 * the dispatch (supervisor.ts), the effects (effects.ts) and the
 * supervisor's users share.
 */
import type { HeroError } from "../../lib/errors.ts";
import type { ServiceSpec } from "../../lib/service-spec.ts";
import { noHistory, type RestartHistory } from "./backoff.ts";
import type { LogFile } from "./logs.ts";
import type { NotifySocket } from "./notify.ts";
import type { AdoptedProcess, Child, ExitInfo } from "./process.ts";
import type { Event, State, Target } from "./state.ts";
import type { SupervisorSystem, TimerHandle } from "./system.ts";

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
  configError: HeroError | null;
  timers: { restart?: TimerHandle; test?: TimerHandle; kill?: TimerHandle };
  stopWaiters: (() => void)[];
  /** The last stderr line of the current (or last) run, whatever its `log` (job mode's message). */
  lastStderr?: string;
  /** The open NOTIFY_SOCKET while a `notify` service has not said READY=1. */
  notify?: NotifySocket;
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

/** One state change, as the supervisor's trace reports it. */
export interface TraceEntry {
  service: string;
  event: Event;
  from: State;
  to: State;
  reason: string;
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
  /** The machine (processes, cgroups, clock); tests pass a fake. Default: realSystem(). */
  system?: SupervisorSystem;
  /** Called for every event the state table takes (ignored ones excluded), after the change. */
  trace?: (entry: TraceEntry) => void;
}

/** A fresh record: target Up, state Unknown (monitor and configError events move it on). */
export function newService(name: string, spec: ServiceSpec): Service {
  return {
    name,
    spec,
    target: "Up",
    state: "Unknown",
    reason: "",
    child: null,
    startedAt: null,
    restarts: 0,
    history: noHistory(),
    lastExit: null,
    lastPid: 0,
    configError: null,
    timers: {},
    stopWaiters: [],
  };
}

/** The spec an invalid service file is shown with (it is never run). */
export function brokenSpec(): ServiceSpec {
  return {
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
  };
}
