/**
 * The service state machine, zinit's states and targets decided by ONE pure
 * function: (state, event, facts) → (next state, actions). No I/O, no
 * timers: the supervisor performs the actions and feeds back events.
 */

/** Observed state, as zinit names it. */
export type State =
  /** Just monitored, not evaluated yet. */
  | "Unknown"
  /** Waiting for a dependency to be Running (or Success for a oneshot). */
  | "Blocked"
  /** Process started; its `test` has not passed yet. */
  | "Spawned"
  /** Long-running and ready (test passed, or no test), or a oneshot still running (zinit's words). */
  | "Running"
  /** Exited 0: a oneshot that did its job, or a service we stopped that exited cleanly. */
  | "Success"
  /**
   * Exited otherwise (status in the reason): a long-running one will be
   * restarted; one we stopped that died of its stop signal shows it (zinit:
   * `Error(Signaled(Pid(N), SIGTERM, false))`).
   */
  | "Error"
  /** The readiness test could not be run. */
  | "TestFailure"
  /** Could not be spawned, or gave up after too many restarts (hero-init). */
  | "Failure";

/** Desired state. */
export type Target = "Up" | "Down";

/** Everything that can happen to a service. */
export type Event =
  | { type: "monitor" } // first seen, target Up
  | { type: "start" } // target set Up
  | { type: "stop" } // target set Down
  | { type: "depsReady" }
  | { type: "depsBlocked"; reason: string } // reason: what it waits for
  | { type: "cycle"; reason: string } // it is a member of a dependency cycle: it can never start
  | { type: "configError"; reason: string } // its service file is invalid: shown, never started
  | { type: "spawned" }
  | { type: "spawnFailed"; reason: string }
  | { type: "testPassed" }
  | { type: "ready" } // the process said READY=1 on its NOTIFY_SOCKET
  | { type: "testError"; reason: string }
  | { type: "exited"; code: number | null; signal: string | null; ranMs: number; detail?: string }
  | { type: "restartDue" }
  | { type: "giveUp"; reason: string };

/** What the supervisor must do. */
export type Action =
  | { type: "spawn" }
  | { type: "kill" } // send the stop signal, start the stop deadline
  | { type: "startTest" }
  | { type: "scheduleRestart" } // the supervisor computes the delay (backoff) or decides to give up
  | { type: "notifyDependents" }
  | { type: "scheduleRun" }; // a periodic oneshot: arm the timer of its next run

/** Facts about the service the table needs. */
export interface Facts {
  oneshot: boolean;
  target: Target;
  hasTest: boolean;
  /** Ready only on READY=1 (NOTIFY_SOCKET), not on spawn. */
  notify: boolean;
  /** A oneshot with a period (`every`): each end arms the next run. */
  periodic: boolean;
  /** Whether the process is currently alive. */
  alive: boolean;
}

/** The outcome of one transition. */
export interface Transition {
  state: State;
  actions: Action[];
  /** Human-readable reason: why Error/Failure/TestFailure, or what a Blocked service waits for. */
  reason?: string;
}

type Handler = (f: Facts, e: Event, s: State) => Transition | null;

const stay = (s: State): Transition => ({ state: s, actions: [] });
const spawn: Transition = { state: "Spawned", actions: [{ type: "spawn" }] };

function exitStatus(e: Extract<Event, { type: "exited" }>): string {
  return e.signal
    ? `killed by ${e.signal}`
    : `exit status ${e.code}${e.detail ? `: ${e.detail}` : ""}`;
}

function onExited(f: Facts, e: Event): Transition | null {
  if (e.type !== "exited") return null;
  const ok = e.code === 0 && e.signal === null;
  // Stopped (target Down): no restart; the state is the exit's, as zinit shows it.
  if (f.target === "Down" || f.oneshot) {
    const actions: Action[] = [{ type: "notifyDependents" }, ...nextRun(f)];
    return ok ? { state: "Success", actions } : { state: "Error", actions, reason: exitStatus(e) };
  }
  return {
    state: "Error",
    actions: [{ type: "notifyDependents" }, { type: "scheduleRestart" }],
    reason: exitStatus(e),
  };
}

/** A periodic oneshot's next run, armed whenever a run ends while it is wanted Up. */
function nextRun(f: Facts): Action[] {
  return f.periodic && f.target === "Up" ? [{ type: "scheduleRun" }] : [];
}

/** Events that mean "try to run now", valid from the idle states. */
function tryRun(f: Facts, e: Event): Transition | null {
  if (f.target !== "Up" || f.alive) return null;
  // Every "try now" goes through Blocked: the supervisor then checks the dependencies.
  if (e.type === "monitor" || e.type === "start" || e.type === "restartDue") {
    return { state: "Blocked", actions: [] };
  }
  // The dependency check's verdicts: wait (saying for what), never (a cycle), or go.
  if (e.type === "depsBlocked" || e.type === "cycle")
    return { state: "Blocked", actions: [], reason: e.reason };
  if (e.type === "depsReady") return spawn;
  return null;
}

/** An invalid service file, found when the service is first seen: Error, never started. */
function onConfigError(_f: Facts, e: Event): Transition | null {
  if (e.type !== "configError") return null;
  return { state: "Error", actions: [], reason: e.reason };
}

/** Stop keeps the state until the process is gone; the exit decides the rest. */
function onStop(f: Facts, e: Event, s: State): Transition | null {
  if (e.type !== "stop") return null;
  return f.alive ? { state: s, actions: [{ type: "kill" }] } : null;
}

function onSpawned(f: Facts, e: Event): Transition | null {
  if (e.type !== "spawned") return null;
  // zinit shows a running oneshot as Running; dependents still wait for its Success.
  if (f.oneshot) return stay("Running");
  if (f.notify) return stay("Spawned"); // until READY=1
  return ready(f);
}

/** Ready to serve (spawned, or READY=1): the readiness test next if it has one, else Running. */
function ready(f: Facts): Transition {
  if (f.hasTest) return { state: "Spawned", actions: [{ type: "startTest" }] };
  return { state: "Running", actions: [{ type: "notifyDependents" }] };
}

function onReady(f: Facts, e: Event): Transition | null {
  return e.type === "ready" && f.notify && f.alive ? ready(f) : null;
}

function onSpawnFailed(f: Facts, e: Event): Transition | null {
  if (e.type !== "spawnFailed") return null;
  const retry = f.target === "Up" && !f.oneshot;
  return {
    state: "Failure",
    actions: retry ? [{ type: "scheduleRestart" }] : nextRun(f),
    reason: e.reason,
  };
}

function onTest(_f: Facts, e: Event): Transition | null {
  if (e.type === "testPassed") return { state: "Running", actions: [{ type: "notifyDependents" }] };
  if (e.type === "testError") return { state: "TestFailure", actions: [], reason: e.reason };
  return null;
}

/**
 * The table: for each state, the handlers tried in order; the first that
 * returns a transition wins. An event no handler takes leaves the state as
 * it is (and is reported by `transition` as ignored).
 */
const TABLE: Record<State, Handler[]> = {
  Unknown: [onConfigError, tryRun],
  Blocked: [tryRun, (f, e) => (e.type === "stop" && !f.alive ? stay("Blocked") : null)],
  Spawned: [onSpawned, onReady, onTest, onSpawnFailed, onExited, onStop],
  Running: [onExited, onStop],
  TestFailure: [onExited, onStop],
  Success: [tryRun],
  Error: [tryRun],
  Failure: [tryRun],
};

/**
 * Decides the next state and actions. Returns the unchanged state with no
 * actions when the event does not apply (e.g. `start` on a Running service).
 */
export function transition(
  state: State,
  event: Event,
  facts: Facts,
): Transition & { ignored: boolean } {
  if (event.type === "giveUp")
    return { state: "Failure", actions: [], reason: event.reason, ignored: false };
  for (const h of TABLE[state]) {
    const t = h(facts, event, state);
    if (t) return { ...t, ignored: false };
  }
  return { state, actions: [], ignored: true };
}

/** Whether a dependent may start given this dependency's state (zinit's rule). */
export function satisfiesDependents(state: State, oneshot: boolean): boolean {
  return oneshot ? state === "Success" : state === "Running";
}
