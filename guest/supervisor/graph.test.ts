import { describe, expect, test } from "bun:test";
import {
  type Candidate,
  cycleReasons,
  depsEvent,
  findCycles,
  stopWaves,
  unmetDeps,
} from "./graph.ts";

const deps = (o: Record<string, string[]>) => new Map(Object.entries(o));

describe("dependency graph", () => {
  test("cycles, including a self-loop, are found; acyclic parts are not", () => {
    expect(findCycles(deps({ a: ["b"], b: ["c"], c: ["a"], d: ["a"], e: ["e"], f: [] }))).toEqual([
      ["a", "b", "c"],
      ["e"],
    ]);
    expect(findCycles(deps({ a: ["b"], b: [], c: ["a", "b"] }))).toEqual([]);
  });

  test("a dependency on an undefined service is not a cycle but is reported as missing", () => {
    expect(findCycles(deps({ a: ["ghost"] }))).toEqual([]);
    const r = unmetDeps(["ghost", "db", "init"], (n) =>
      n === "db"
        ? { state: "Spawned", oneshot: false }
        : n === "init"
          ? { state: "Success", oneshot: true }
          : undefined,
    );
    expect(r).toEqual({ missing: ["ghost"], waiting: ["db"] });
  });

  test("oneshot chains: each waits for the previous to succeed", () => {
    const states: Record<string, { state: "Success" | "Spawned"; oneshot: boolean }> = {
      mount: { state: "Success", oneshot: true },
      migrate: { state: "Spawned", oneshot: true },
    };
    expect(unmetDeps(["mount"], (n) => states[n]).waiting).toEqual([]);
    expect(unmetDeps(["migrate"], (n) => states[n]).waiting).toEqual(["migrate"]);
  });

  test("stop waves: dependents before their dependencies", () => {
    const waves = stopWaves(deps({ net: [], db: ["net"], app: ["db", "net"], log: [] }));
    expect(waves).toEqual([["app", "log"], ["db"], ["net"]]);
  });

  test("stop waves terminate on cycles", () => {
    expect(stopWaves(deps({ a: ["b"], b: ["a"], c: ["a"] }))).toEqual([["c"], ["a", "b"]]);
  });

  test("cycle reasons: every member of a cycle gets its cycle's text, nobody else", () => {
    const r = cycleReasons(deps({ a: ["b"], b: ["a"], c: ["a"], s: ["s"] }));
    expect([...r]).toEqual([
      ["a", "dependency cycle: a → b → a"],
      ["b", "dependency cycle: a → b → a"],
      ["s", "dependency cycle: s → s"],
    ]);
  });

  describe("depsEvent: the verdict for a service waiting to start", () => {
    const waiting: Candidate = {
      target: "Up",
      state: "Blocked",
      alive: false,
      broken: false,
      after: [],
    };
    const world: Record<string, { state: "Running" | "Spawned" | "Success"; oneshot: boolean }> = {
      db: { state: "Spawned", oneshot: false },
      web: { state: "Running", oneshot: false },
      init: { state: "Success", oneshot: true },
    };
    const lookup = (n: string) => world[n];

    test("services not waiting to start get no event", () => {
      for (const c of [
        { target: "Down" },
        { alive: true },
        { broken: true },
        { state: "Running" },
        { state: "Error" },
        { state: "Success" },
      ] as const)
        expect(depsEvent({ ...waiting, ...c }, undefined, lookup)).toBeNull();
    });

    test("ready when every dependency is Running (or Success for a oneshot), from Unknown too", () => {
      expect(depsEvent({ ...waiting, after: ["web", "init"] }, undefined, lookup)).toEqual({
        type: "depsReady",
      });
      expect(depsEvent({ ...waiting, state: "Unknown" }, undefined, lookup)).toEqual({
        type: "depsReady",
      });
    });

    test("blocked, saying what it waits for: undefined services first, then unready ones", () => {
      expect(depsEvent({ ...waiting, after: ["ghost", "db", "web"] }, undefined, lookup)).toEqual({
        type: "depsBlocked",
        reason: "waiting for undefined ghost; waiting for db",
      });
      expect(depsEvent({ ...waiting, after: ["db"] }, undefined, lookup)).toEqual({
        type: "depsBlocked",
        reason: "waiting for db",
      });
    });

    test("a cycle member is told so, whatever its dependencies' states", () => {
      expect(depsEvent({ ...waiting, after: ["web"] }, "dependency cycle: x", lookup)).toEqual({
        type: "cycle",
        reason: "dependency cycle: x",
      });
    });
  });
});
