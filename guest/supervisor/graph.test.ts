import { describe, expect, test } from "bun:test";
import { findCycles, stopWaves, unmetDeps } from "./graph.ts";

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
});
