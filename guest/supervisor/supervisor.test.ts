/**
 * The whole supervisor (dispatch, dependency evaluation, effects) driven
 * against a fake machine: fake processes that exit when the test says so, a
 * fake clock whose timers fire when the test advances it, no cgroups. No
 * process is started and nothing waits on the wall clock; the tests assert
 * the states, the state changes (the trace) and the order of the effects.
 */
import { describe, expect, test } from "bun:test";
import { HeroError } from "../../lib/errors.ts";
import { type ServiceSpecInput, validateServiceSpec } from "../../lib/service-spec.ts";
import type { Child, ExitInfo, SpawnSpec } from "./process.ts";
import { createSupervisor, type Supervisor, type TraceEntry } from "./supervisor.ts";
import type { Clock, SupervisorSystem } from "./system.ts";

const SIGNAL_NAMES: Record<number, string> = { 2: "SIGINT", 9: "SIGKILL", 15: "SIGTERM" };

/** Lets every pending promise callback and microtask run (no timer involved). */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** A clock that only moves when the test advances it. */
class FakeClock implements Clock {
  t = 1_000_000;
  private seq = 0;
  timers = new Map<number, { at: number; fn: () => void }>();
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.timers.delete(id as number);
  };
  sleep = (ms: number) => new Promise<void>((r) => this.setTimeout(r, ms));
  /** Moves time forward, firing due timers in order (and what they set off). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await settle(); // what is already under way sets its timers first
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at);
      const first = due[0];
      if (!first) break;
      this.timers.delete(first[0]);
      this.t = first[1].at;
      first[1].fn();
      await settle();
    }
    this.t = end;
    await settle();
  }
}

/** A process of the fake machine. */
interface FakeProc {
  pid: number;
  argv: string[];
  spec: SpawnSpec;
  exit(code: number | null, signal?: string | null): void;
}

/**
 * The fake machine. `calls` records every effect in order: "spawn <argv>",
 * "signal <argv0> <sig>", "timer <ms>", "cgroup.kill <service>". A process
 * dies of a signal unless its argv[0] is in `stubborn`; a program named in
 * `exitAtOnce` exits with that code right after it starts; one in `missing`
 * cannot be started (ENOENT).
 */
function fakeSystem() {
  const clock = new FakeClock();
  const calls: string[] = [];
  const procs: FakeProc[] = [];
  const stubborn = new Set<string>();
  const exitAtOnce = new Map<string, number>();
  const missing = new Set<string>();
  let nextPid = 100;
  /** Open notify sockets by service: what the service would send on its NOTIFY_SOCKET. */
  const notify = new Map<string, (text: string) => void>();
  const sys: SupervisorSystem = {
    clock: {
      now: clock.now,
      sleep: clock.sleep,
      clearTimeout: clock.clearTimeout,
      setTimeout: (fn, ms) => {
        calls.push(`timer ${ms}`);
        return clock.setTimeout(fn, ms);
      },
    },
    spawn(spec) {
      const name = spec.argv[0] as string;
      if (missing.has(name))
        throw Object.assign(new Error(`${name}: not found`), { code: "ENOENT" });
      calls.push(`spawn ${spec.argv.join(" ")}`);
      let resolve: (e: ExitInfo) => void = () => {};
      const exited = new Promise<ExitInfo>((r) => {
        resolve = r;
      });
      const pid = nextPid++;
      let done = false;
      const proc: FakeProc = {
        pid,
        argv: spec.argv,
        spec,
        exit(code, signal = null) {
          if (done) return;
          done = true;
          resolve({ code, signal });
        },
      };
      procs.push(proc);
      const child: Child = {
        pid,
        startedAt: clock.t,
        exited,
        signal(sig) {
          calls.push(`signal ${name} ${sig}`);
          if (!stubborn.has(name) || sig === 9) proc.exit(null, SIGNAL_NAMES[sig] ?? `SIG${sig}`);
        },
      };
      const code = exitAtOnce.get(name);
      if (code !== undefined) queueMicrotask(() => proc.exit(code));
      return child;
    },
    adopt: () => {
      throw new Error("adopt: not used by these tests");
    },
    signal: (pid, sig) => calls.push(`signal pid ${pid} ${sig}`),
    groups: {
      ensure: () => null,
      pids: () => [],
      kill: (name) => {
        calls.push(`cgroup.kill ${name}`);
        return false; // as without cgroup.kill: the supervisor falls back to the process group
      },
      remove: () => {},
    },
    environment: () => ({ FROM_SYSTEM: "1" }),
    notifySocket(service, _uid, onMessage) {
      calls.push(`notify.open ${service}`);
      notify.set(service, onMessage);
      return {
        path: `/run/notify/${service}.sock`,
        close: () => {
          calls.push(`notify.close ${service}`);
          notify.delete(service);
        },
      };
    },
  };
  /** The last process started with this argv[0]. */
  const proc = (name: string): FakeProc => {
    const p = procs.findLast((x) => x.argv[0] === name);
    if (!p) throw new Error(`no process ${name}`);
    return p;
  };
  return { sys, clock, calls, procs, proc, stubborn, exitAtOnce, missing, notify };
}

const spec = (raw: ServiceSpecInput) => validateServiceSpec(raw, "test.yaml");

function setup(opts: { onExit?: (name: string, exit: ExitInfo, pid: number) => void } = {}) {
  const fake = fakeSystem();
  const trace: TraceEntry[] = [];
  const sup: Supervisor = createSupervisor({
    system: fake.sys,
    trace: (e) => trace.push(e),
    env: { FROM_OPTS: "1" },
    onExit: opts.onExit && ((svc, exit, pid) => opts.onExit?.(svc.name, exit, pid)),
  });
  /** The trace of one service as "event:from→to". */
  const steps = (name: string) =>
    trace.filter((t) => t.service === name).map((t) => `${t.event.type}:${t.from}→${t.to}`);
  return { ...fake, sup, trace, steps };
}

describe("supervisor on a fake machine", () => {
  test("a service starts, and each exit restarts it after a doubling backoff delay", async () => {
    const f = setup();
    f.sup.monitor("web", spec({ exec: "httpd -p 80", restart: { delay: 100, limit: 0 } }));
    expect(f.sup.status("web")).toMatchObject({ state: "Running", pid: 100, target: "Up" });
    expect(f.steps("web")).toEqual([
      "monitor:Unknown→Blocked",
      "depsReady:Blocked→Spawned",
      "spawned:Spawned→Running",
    ]);
    // The environment: the system's, then the supervisor's, and a PATH.
    expect(f.proc("httpd").spec.env).toMatchObject({ FROM_SYSTEM: "1", FROM_OPTS: "1" });
    expect(f.proc("httpd").spec.env.PATH).toContain("/usr/bin");

    f.proc("httpd").exit(3);
    await f.clock.advance(0);
    expect(f.sup.status("web")).toMatchObject({ state: "Error", reason: "exit status 3", pid: 0 });
    expect(f.sup.status("web").lastExit).toEqual({ code: 3, signal: null });
    await f.clock.advance(99);
    expect(f.calls).toEqual(["spawn httpd -p 80", "timer 100"]);
    await f.clock.advance(1);
    expect(f.sup.status("web")).toMatchObject({ state: "Running", pid: 101, restarts: 1 });

    f.proc("httpd").exit(null, "SIGSEGV");
    await f.clock.advance(200);
    expect(f.calls).toEqual([
      "spawn httpd -p 80",
      "timer 100",
      "spawn httpd -p 80",
      "timer 200",
      "spawn httpd -p 80",
    ]);
    expect(f.steps("web").slice(3)).toEqual([
      "exited:Running→Error",
      "restartDue:Error→Blocked",
      "depsReady:Blocked→Spawned",
      "spawned:Spawned→Running",
      "exited:Running→Error",
      "restartDue:Error→Blocked",
      "depsReady:Blocked→Spawned",
      "spawned:Spawned→Running",
    ]);
    expect(f.sup.status("web").restarts).toBe(2);
  });

  test("too many restarts in the window: Failure with the reason, no further timer", async () => {
    const f = setup();
    f.sup.monitor("flaky", spec({ exec: "flaky", restart: { delay: 10, limit: 2, window: 60 } }));
    for (let i = 0; i < 3; i++) {
      f.proc("flaky").exit(1);
      await f.clock.advance(1000);
    }
    const st = f.sup.status("flaky");
    expect(st.state).toBe("Failure");
    expect(st.reason).toStartWith("gave up: restarted 2 times within 60 s (limit 2); last: ");
    expect(f.calls.filter((c) => c.startsWith("spawn"))).toHaveLength(3);
    expect(f.clock.timers.size).toBe(0);
    expect(f.steps("flaky").at(-1)).toBe("giveUp:Error→Failure");
  });

  test("a oneshot dependency gates its dependent until it succeeds", async () => {
    const f = setup();
    f.sup.monitor("setup", spec({ exec: "mkfs", oneshot: true }));
    f.sup.monitor("app", spec({ exec: "app", after: ["setup"] }));
    // A running oneshot shows Running (zinit's word); its dependent waits for Success.
    expect(f.sup.status("setup").state).toBe("Running");
    expect(f.sup.status("app")).toMatchObject({
      state: "Blocked",
      reason: "waiting for setup",
      after: { setup: "Running" },
    });
    await f.clock.advance(10_000);
    expect(f.calls).toEqual(["spawn mkfs"]);

    f.proc("mkfs").exit(0);
    await f.clock.advance(0);
    expect(f.sup.status("setup").state).toBe("Success");
    expect(f.sup.status("app")).toMatchObject({ state: "Running", reason: "" });
    expect(f.calls).toEqual(["spawn mkfs", "spawn app"]);
    expect(f.steps("app")).toEqual([
      "monitor:Unknown→Blocked",
      "depsBlocked:Blocked→Blocked",
      "depsReady:Blocked→Spawned",
      "spawned:Spawned→Running",
    ]);
  });

  test("a failed oneshot is never restarted and keeps its dependent Blocked", async () => {
    const f = setup();
    f.sup.monitor("setup", spec({ exec: "mkfs", oneshot: true }));
    f.sup.monitor("app", spec({ exec: "app", after: ["setup", "ghost"] }));
    f.proc("mkfs").exit(2);
    await f.clock.advance(60_000);
    expect(f.sup.status("setup")).toMatchObject({ state: "Error", reason: "exit status 2" });
    expect(f.sup.status("app")).toMatchObject({
      state: "Blocked",
      reason: "waiting for undefined ghost; waiting for setup",
    });
    expect(f.calls).toEqual(["spawn mkfs"]);
  });

  test("the readiness test runs until it passes; only then is the service Running", async () => {
    const f = setup();
    f.exitAtOnce.set("probe", 1);
    f.sup.monitor("db", spec({ exec: "postgres", test: "probe --ready" }));
    await f.clock.advance(0);
    expect(f.sup.status("db").state).toBe("Spawned");
    expect(f.calls).toEqual(["spawn postgres", "spawn probe --ready", "timer 2000"]);
    f.exitAtOnce.set("probe", 0);
    await f.clock.advance(2000);
    expect(f.sup.status("db").state).toBe("Running");
    expect(f.calls.slice(3)).toEqual(["spawn probe --ready"]);
    expect(f.steps("db")).toEqual([
      "monitor:Unknown→Blocked",
      "depsReady:Blocked→Spawned",
      "spawned:Spawned→Spawned",
      "testPassed:Spawned→Running",
    ]);
  });

  test("stop sends the stop signal, waits for the exit, and never restarts", async () => {
    const f = setup();
    f.sup.monitor("web", spec({ exec: "httpd", signal: { stop: "sigint" } }));
    let stopped = false;
    const p = f.sup.stop("web").then(() => {
      stopped = true;
    });
    await p;
    expect(stopped).toBe(true);
    // zinit's state for a process its stop signal ended: Error(Signaled(…, SIGINT, …)).
    expect(f.sup.status("web")).toMatchObject({
      state: "Error",
      target: "Down",
      reason: "killed by SIGINT",
    });
    expect(f.calls).toEqual(["spawn httpd", "signal httpd 2", "timer 10000"]);
    // The stop deadline was cleared once the service was gone; nothing is pending.
    expect(f.clock.timers.size).toBe(0);
    await f.clock.advance(60_000);
    expect(f.calls).toHaveLength(3);
    expect(f.steps("web").slice(3)).toEqual(["stop:Running→Running", "exited:Running→Error"]);
  });

  test("a service that ignores the stop signal is killed at its shutdown_timeout", async () => {
    const f = setup();
    f.stubborn.add("stuck");
    f.sup.monitor("stuck", spec({ exec: "stuck", shutdown_timeout: 3 }));
    let stopped = false;
    void f.sup.stop("stuck").then(() => {
      stopped = true;
    });
    await f.clock.advance(2999);
    expect(stopped).toBe(false);
    expect(f.sup.status("stuck").state).toBe("Running");
    await f.clock.advance(1);
    expect(stopped).toBe(true);
    expect(f.calls).toEqual([
      "spawn stuck",
      "signal stuck 15",
      "timer 3000",
      "cgroup.kill stuck",
      "signal stuck 9",
    ]);
    expect(f.sup.status("stuck")).toMatchObject({ state: "Error", reason: "killed by SIGKILL" });
  });

  test("a dependency cycle is Blocked with the cycle named, and nothing is spawned", async () => {
    const f = setup();
    f.sup.monitor("a", spec({ exec: "a", after: ["b"] }));
    f.sup.monitor("b", spec({ exec: "b", after: ["a"] }));
    await f.clock.advance(0);
    for (const n of ["a", "b"])
      expect(f.sup.status(n)).toMatchObject({
        state: "Blocked",
        reason: "dependency cycle: a → b → a",
      });
    expect(f.calls).toEqual([]);
    expect(f.steps("b")).toEqual(["monitor:Unknown→Blocked", "cycle:Blocked→Blocked"]);
    // Forgetting one member breaks the cycle: the other is then only waiting.
    await f.sup.stop("a");
    f.sup.forget("a");
    f.sup.start("b");
    expect(f.sup.status("b")).toMatchObject({
      state: "Blocked",
      reason: "waiting for undefined a",
    });
  });

  test("an invalid service file is Error through the state table and can never start", () => {
    const f = setup();
    const err = new HeroError("schema", "is required", {
      file: "/etc/zinit/bad.yaml",
      field: "exec",
    });
    f.sup.addBroken("bad", err);
    expect(f.sup.status("bad")).toMatchObject({
      state: "Error",
      target: "Down",
      reason: "config: /etc/zinit/bad.yaml: exec: is required",
    });
    expect(f.trace).toEqual([
      {
        service: "bad",
        event: { type: "configError", reason: "config: /etc/zinit/bad.yaml: exec: is required" },
        from: "Unknown",
        to: "Error",
        reason: "config: /etc/zinit/bad.yaml: exec: is required",
      },
    ]);
    expect(() => f.sup.start("bad")).toThrow(
      expect.objectContaining({ code: "supervisor.config" }),
    );
    f.sup.monitor("other", spec({ exec: "other" }));
    expect(f.calls).toEqual(["spawn other"]);
    f.sup.forget("bad");
    expect(f.sup.has("bad")).toBe(false);
  });

  test("a missing program is Failure, reported as exit 127, and retried", async () => {
    const seen: string[] = [];
    const f = setup({ onExit: (name, exit, pid) => seen.push(`${name} ${exit.code} ${pid}`) });
    f.missing.add("nope");
    f.sup.monitor("gone", spec({ exec: "nope", restart: { delay: 50 } }));
    expect(f.sup.status("gone")).toMatchObject({
      state: "Failure",
      reason: "cannot start nope: nope: not found",
    });
    expect(seen).toEqual(["gone 127 0"]);
    expect(f.calls).toEqual(["timer 50"]);
    f.missing.delete("nope");
    await f.clock.advance(50);
    expect(f.sup.status("gone").state).toBe("Running");
  });

  test("the ring: zinit's start marker at each spawn; log: stdout stays out; the last stderr line is kept", async () => {
    const f = setup();
    f.sup.monitor("web", spec({ exec: "web", restart: { delay: 10 } }));
    f.proc("web").spec.onLine?.("stdout", "hi");
    f.proc("web").spec.onLine?.("stderr", "oops");
    f.proc("web").exit(1);
    await f.clock.advance(10);
    const lines = f.sup.ring.since(0, "web").map((l) => `${l.stream} ${l.text}`);
    expect(lines).toEqual([
      "stderr ------------ [start] ------------",
      "stdout hi",
      "stderr oops",
      "stderr ------------ [start] ------------",
    ]);
    expect(f.sup.service("web").lastStderr).toBeUndefined(); // a new run
    f.sup.monitor("cons", spec({ exec: "cons", log: "stdout" }));
    f.proc("cons").spec.onLine?.("stdout", "to the console");
    f.proc("cons").spec.onLine?.("stderr", "last words");
    expect(f.sup.ring.since(0, "cons")).toEqual([]);
    expect(f.sup.service("cons").lastStderr).toBe("last words");
    f.sup.monitor("quiet", spec({ exec: "quiet", log: "none" }));
    expect(f.proc("quiet").spec.onLine).toBeNull();
    expect(f.sup.ring.since(0, "quiet")).toEqual([]);
  });

  test("notify: Spawned until READY=1 on its NOTIFY_SOCKET; dependants wait for ready, not for spawn", async () => {
    const f = setup();
    f.sup.monitor("db", spec({ exec: "db", notify: true, restart: { delay: 10 } }));
    f.sup.monitor("app", spec({ exec: "app", after: ["db"] }));
    expect(f.proc("db").spec.env.NOTIFY_SOCKET).toBe("/run/notify/db.sock");
    await f.clock.advance(0);
    expect(f.sup.status("db").state).toBe("Spawned");
    expect(f.sup.status("app").state).toBe("Blocked");
    f.notify.get("db")?.("STATUS=loading\nMAINPID=100");
    await f.clock.advance(0);
    expect(f.sup.status("db").state).toBe("Spawned");
    f.notify.get("db")?.("STATUS=up\nREADY=1\n");
    await f.clock.advance(0);
    expect(f.sup.status("db").state).toBe("Running");
    expect(f.sup.status("app").state).toBe("Running");
    // The socket is closed once ready; a restarted process gets a fresh one and waits again.
    expect(f.notify.has("db")).toBe(false);
    f.proc("db").exit(1);
    await f.clock.advance(10);
    expect(f.sup.status("db").state).toBe("Spawned");
    expect(f.calls.filter((c) => c.startsWith("notify"))).toEqual([
      "notify.open db",
      "notify.close db",
      "notify.open db",
    ]);
    // A process that exits before READY=1 has its socket closed.
    f.proc("db").exit(1);
    await f.clock.advance(0);
    expect(f.notify.has("db")).toBe(false);
    expect(f.sup.status("db").state).toBe("Error");
  });

  test("notify with a test: READY=1 first, then the test", async () => {
    const f = setup();
    f.sup.monitor("db", spec({ exec: "db", notify: true, test: "probe" }));
    await f.clock.advance(0);
    expect(f.calls).toEqual(["notify.open db", "spawn db"]);
    f.notify.get("db")?.("READY=1");
    await f.clock.advance(0);
    expect(f.calls.at(-1)).toBe("spawn probe");
    f.proc("probe").exit(0);
    await f.clock.advance(0);
    expect(f.sup.status("db").state).toBe("Running");
  });

  test("every: a periodic oneshot re-runs on its period, never overlapping; Success/Error between runs", async () => {
    const f = setup();
    f.sup.monitor("tick", spec({ exec: "tick", oneshot: true, every: 60 }));
    f.sup.monitor("after", spec({ exec: "after", oneshot: true, after: ["tick"] }));
    expect(f.sup.status("tick").state).toBe("Running");
    await f.clock.advance(5_000);
    f.proc("tick").exit(0);
    await f.clock.advance(0);
    expect(f.sup.status("tick").state).toBe("Success");
    expect(f.calls).toContain("timer 55000"); // the next slot: 60 s after the start
    expect(f.procs.filter((p) => p.argv[0] === "after")).toHaveLength(1);
    await f.clock.advance(55_000);
    expect(f.sup.status("tick")).toMatchObject({ state: "Running", restarts: 0 });
    // A run longer than the period: no second process meanwhile, the next slot after its end.
    await f.clock.advance(130_000);
    expect(f.procs.filter((p) => p.argv[0] === "tick")).toHaveLength(2);
    f.proc("tick").exit(3);
    await f.clock.advance(0);
    expect(f.sup.status("tick")).toMatchObject({ state: "Error", reason: "exit status 3" });
    expect(f.calls.at(-1)).toBe("timer 50000"); // ran 130 s from t=60: next slot at t=240
    await f.clock.advance(50_000);
    expect(f.procs.filter((p) => p.argv[0] === "tick")).toHaveLength(3);
    // Stopped: the run ends and no next one is armed; start resumes at once.
    await f.sup.stop("tick");
    await f.clock.advance(600_000);
    expect(f.procs.filter((p) => p.argv[0] === "tick")).toHaveLength(3);
    f.sup.start("tick");
    expect(f.procs.filter((p) => p.argv[0] === "tick")).toHaveLength(4);
  });

  test("shutdownAll stops dependents before their dependencies and refuses new starts", async () => {
    const f = setup();
    f.sup.monitor("db", spec({ exec: "db" }));
    f.sup.monitor("app", spec({ exec: "app", after: ["db"] }));
    await f.clock.advance(0);
    await f.sup.shutdownAll();
    expect(f.calls.filter((c) => c.startsWith("signal"))).toEqual([
      "signal app 15",
      "signal db 15",
    ]);
    expect(f.sup.isShuttingDown()).toBe(true);
    expect(() => f.sup.start("db")).toThrow("shutting down");
  });
});
