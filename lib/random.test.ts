import { describe, expect, test } from "bun:test";
import { randomHex } from "./random.ts";

describe("randomHex", () => {
  test("gives 2 lowercase hex digits per byte", () => {
    expect(randomHex(16)).toMatch(/^[0-9a-f]{32}$/);
    expect(randomHex(1)).toMatch(/^[0-9a-f]{2}$/);
    expect(randomHex(0)).toBe("");
  });

  test("does not repeat itself", () => {
    const seen = new Set(Array.from({ length: 1000 }, () => randomHex(6)));
    expect(seen.size).toBe(1000);
  });

  test("uses every hex digit (leading zeros kept)", () => {
    const all = randomHex(4096);
    expect(new Set(all).size).toBe(16);
    expect(all).toHaveLength(8192);
  });
});
