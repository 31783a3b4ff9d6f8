import { describe, expect, test } from "bun:test";
import { type Event, type Facts, type State, satisfiesDependents, transition } from "./state.ts";

const facts = (f: Partial<Facts> = {}): Facts => ({
  oneshot: false,
  target: "Up",
  hasTest: false,
  notify: false,
  periodic: false,
  alive: false,
  ...f,
});
const run = (s: State, e: Event, f: Partial<Facts> = {}) => transition(s, e, facts(f));

describe("transition table", () => {
  test("notify: Spawned until READY=1, then Running (or its test); READY=1 elsewhere is ignored", () => {
    const n = { notify: true, alive: true };
    expect(run("Spawned", { type: "spawned" }, n)).toMatchObject({ state: "Spawned", actions: [] });
    expect(run("Spawned", { type: "ready" }, n)).toMatchObject({
      state: "Running",
      actions: [{ type: "notifyDependents" }],
    });
    expect(run("Spawned", { type: "ready" }, { ...n, hasTest: true })).toMatchObject({
      state: "Spawned",
      actions: [{ type: "startTest" }],
    });
    expect(run("Running", { type: "ready" }, n).ignored).toBe(true);
    expect(run("Spawned", { type: "ready" }, { alive: true }).ignored).toBe(true);
    // A notify oneshot is Running while it runs, as any oneshot.
    expect(run("Spawned", { type: "spawned" }, { ...n, oneshot: true }).state).toBe("Running");
  });

  test("periodic oneshot: every end (exit or failed spawn) arms the next run, unless stopped", () => {
    const p = { oneshot: true, periodic: true, alive: true };
    const ok = { type: "exited", code: 0, signal: null, ranMs: 5 } as const;
    expect(run("Running", ok, p)).toMatchObject({
      state: "Success",
      actions: [{ type: "notifyDependents" }, { type: "scheduleRun" }],
    });
    expect(run("Running", { ...ok, code: 2 }, p)).toMatchObject({
      state: "Error",
      actions: [{ type: "notifyDependents" }, { type: "scheduleRun" }],
    });
    expect(run("Running", ok, { ...p, target: "Down" }).actions).toEqual([
      { type: "notifyDependents" },
    ]);
    expect(run("Spawned", { type: "spawnFailed", reason: "x" }, p)).toMatchObject({
      state: "Failure",
      actions: [{ type: "scheduleRun" }],
    });
    expect(run("Success", { type: "restartDue" }, { ...p, alive: false }).state).toBe("Blocked");
  });

  test("monitor and start go through Blocked; depsReady spawns", () => {
    expect(run("Unknown", { type: "monitor" })).toMatchObject({ state: "Blocked", actions: [] });
    expect(run("Blocked", { type: "depsReady" })).toMatchObject({
      state: "Spawned",
      actions: [{ type: "spawn" }],
    });
    expect(run("Error", { type: "start" })).toMatchObject({ state: "Blocked" });
  });

  test("spawned without test is Running and wakes dependents; with a test it waits", () => {
    expect(run("Spawned", { type: "spawned" })).toMatchObject({
      state: "Running",
      actions: [{ type: "notifyDependents" }],
    });
    expect(run("Spawned", { type: "spawned" }, { hasTest: true })).toMatchObject({
      state: "Spawned",
      actions: [{ type: "startTest" }],
    });
    expect(run("Spawned", { type: "testPassed" })).toMatchObject({ state: "Running" });
    expect(run("Spawned", { type: "testError", reason: "x" })).toMatchObject({
      state: "TestFailure",
      reason: "x",
    });
  });

  test("a oneshot is Running while it runs (zinit's word), Success on 0, Error otherwise, never restarted", () => {
    expect(run("Spawned", { type: "spawned" }, { oneshot: true, hasTest: true })).toMatchObject({
      state: "Running",
      actions: [],
    });
    expect(
      run("Spawned", { type: "exited", code: 0, signal: null, ranMs: 5 }, { oneshot: true }),
    ).toMatchObject({ state: "Success" });
    const err = run(
      "Spawned",
      { type: "exited", code: 3, signal: null, ranMs: 5 },
      { oneshot: true },
    );
    expect(err).toMatchObject({ state: "Error", reason: "exit status 3" });
    expect(err.actions.map((a) => a.type)).not.toContain("scheduleRestart");
  });

  test("a long-running service that exits with target Up is restarted, whatever the status", () => {
    for (const [code, signal] of [
      [0, null],
      [1, null],
      [null, "SIGKILL"],
    ] as const) {
      const t = run("Running", { type: "exited", code, signal, ranMs: 10 });
      expect(t.state).toBe("Error");
      expect(t.actions.map((a) => a.type)).toEqual(["notifyDependents", "scheduleRestart"]);
    }
  });

  test("an exit status can carry a detail (why 127)", () => {
    const t = run("Running", {
      type: "exited",
      code: 127,
      signal: null,
      ranMs: 1,
      detail: "cannot exec /x",
    });
    expect(t.reason).toBe("exit status 127: cannot exec /x");
  });

  test("stop keeps the state until exit; with target Down the exit's state (zinit's), no restart", () => {
    expect(run("Running", { type: "stop" }, { alive: true, target: "Down" })).toMatchObject({
      state: "Running",
      actions: [{ type: "kill" }],
    });
    const t = run(
      "Running",
      { type: "exited", code: null, signal: "SIGTERM", ranMs: 10 },
      { target: "Down" },
    );
    // zinit shows a process its stop signal ended as Error(Signaled(…, SIGTERM, …)).
    expect(t).toMatchObject({ state: "Error", reason: "killed by SIGTERM" });
    expect(t.actions.map((a) => a.type)).toEqual(["notifyDependents"]);
    const clean = run(
      "Running",
      { type: "exited", code: 0, signal: null, ranMs: 10 },
      { target: "Down" },
    );
    expect(clean).toMatchObject({ state: "Success", actions: [{ type: "notifyDependents" }] });
  });

  test("spawn failure is Failure; retried only for long-running services", () => {
    expect(run("Spawned", { type: "spawnFailed", reason: "ENOENT" })).toMatchObject({
      state: "Failure",
      actions: [{ type: "scheduleRestart" }],
    });
    expect(
      run("Spawned", { type: "spawnFailed", reason: "ENOENT" }, { oneshot: true }),
    ).toMatchObject({ state: "Failure", actions: [] });
  });

  test("giveUp from anywhere is Failure with the reason", () => {
    expect(run("Error", { type: "giveUp", reason: "too many" })).toMatchObject({
      state: "Failure",
      reason: "too many",
    });
  });

  test("events that do not apply are ignored and change nothing", () => {
    const t = run("Running", { type: "start" }, { alive: true });
    expect(t).toMatchObject({ state: "Running", actions: [], ignored: true });
    expect(run("Success", { type: "depsReady" }, { target: "Down" }).ignored).toBe(true);
  });

  test("dependents wait for Running (long-running) or Success (oneshot)", () => {
    expect(satisfiesDependents("Running", false)).toBe(true);
    expect(satisfiesDependents("Spawned", false)).toBe(false);
    expect(satisfiesDependents("Success", true)).toBe(true);
    expect(satisfiesDependents("Running", true)).toBe(false);
    expect(satisfiesDependents("Error", true)).toBe(false);
  });

  test("dependency verdicts: waiting and cycles are Blocked with the reason; from Blocked too", () => {
    for (const from of ["Unknown", "Blocked", "Error"] as const) {
      expect(run(from, { type: "depsBlocked", reason: "waiting for db" })).toMatchObject({
        state: "Blocked",
        actions: [],
        reason: "waiting for db",
        ignored: false,
      });
      expect(run(from, { type: "cycle", reason: "dependency cycle: a → b → a" })).toMatchObject({
        state: "Blocked",
        actions: [],
        reason: "dependency cycle: a → b → a",
        ignored: false,
      });
    }
    // Only a service that should run and does not is blocked.
    expect(run("Blocked", { type: "cycle", reason: "c" }, { target: "Down" }).ignored).toBe(true);
    expect(run("Running", { type: "depsBlocked", reason: "w" }, { alive: true }).ignored).toBe(
      true,
    );
  });

  test("a config error takes a new service to Error with the reason, never anything to run", () => {
    const t = run("Unknown", { type: "configError", reason: "config: bad" }, { target: "Down" });
    expect(t).toMatchObject({ state: "Error", actions: [], reason: "config: bad", ignored: false });
    // Only a service just seen: a known one is not turned into a config error.
    expect(run("Running", { type: "configError", reason: "x" }, { alive: true }).ignored).toBe(
      true,
    );
    expect(run("Blocked", { type: "configError", reason: "x" }).ignored).toBe(true);
  });
});
