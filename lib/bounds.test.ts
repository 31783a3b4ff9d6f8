import { describe, expect, test } from "bun:test";
import { type Bounds, checkBounds, costFor } from "./bounds.ts";

const B: Bounds = { maxCost: 1000, maxDepth: 4, refuseReservedKeys: true };

describe("checkBounds", () => {
  test("counts nodes, strings and keys as expanded", () => {
    expect(checkBounds({ a: "x".repeat(900) }, B)).toBeNull();
    expect(checkBounds({ a: "x".repeat(1000) }, B)).toEqual({ kind: "cost", path: ["a"] });
    // A shared node is counted at every place it appears, as a serialiser would write it.
    const s = "y".repeat(300);
    expect(checkBounds({ a: [s, s, s, s] }, B)).toEqual({ kind: "cost", path: ["a", 3] });
  });

  test("stops at the budget: a bomb of 10^30 expanded nodes is walked in a few steps", () => {
    let v: unknown = "z";
    for (let i = 0; i < 30; i++) v = Array(10).fill(v);
    // Without the early stop this would never end (the test's timeout would fail it).
    expect(checkBounds(v, { ...B, maxDepth: 64 })?.kind).toBe("cost");
  });

  test("depth", () => {
    expect(checkBounds([[[["x"]]]], B)).toBeNull();
    expect(checkBounds([[[[["x"]]]]], B)).toEqual({ kind: "depth", path: [0, 0, 0, 0] });
  });

  test("reserved keys, as own properties (as parsers make them)", () => {
    const o = JSON.parse('{"env": {"A": "1", "__proto__": "x"}}');
    expect(checkBounds(o, B)).toEqual({
      kind: "reserved",
      key: "__proto__",
      path: ["env", "__proto__"],
    });
    expect(checkBounds({ constructor: 1 }, B)?.kind).toBe("reserved");
    expect(checkBounds({ constructor: 1 }, { ...B, refuseReservedKeys: false })).toBeNull();
    expect(checkBounds(["__proto__"], B)).toBeNull(); // a value, not a key
  });

  test("dates are leaves", () => {
    expect(checkBounds({ d: new Date(0) }, B)).toBeNull();
  });

  test("costFor leaves room for any text without aliases", () => {
    const text = JSON.stringify(Array(1000).fill(0));
    expect(checkBounds(JSON.parse(text), { ...B, maxCost: costFor(text.length) })).toBeNull();
  });
});
