import { describe, expect, test } from "bun:test";
import { createPacer, LINE_COST, OUTPUT_RATE, outputCost } from "./pace.ts";

describe("output pacer", () => {
  test("the burst is free; beyond it each byte costs 1/rate seconds of waiting", () => {
    let t = 0;
    const p = createPacer(1000, 500, () => t);
    expect(p.charge(500)).toBe(0);
    // 100 bytes into debt at 1000 bytes/s: 100 ms.
    expect(p.charge(100)).toBe(100);
    t = 100;
    // The debt is paid: the next 50 bytes are again 50 ms of debt.
    expect(p.charge(50)).toBe(50);
  });

  test("tokens come back at the rate, never beyond the burst", () => {
    let t = 0;
    const p = createPacer(1000, 500, () => t);
    expect(p.charge(500)).toBe(0);
    t = 10_000; // ten seconds idle: 10,000 bytes' worth, but only 500 are kept
    expect(p.charge(500)).toBe(0);
    expect(p.charge(1)).toBe(1);
  });

  test("a flood averages the rate: the time waited is what the bytes beyond the burst cost", () => {
    let t = 0;
    const p = createPacer(OUTPUT_RATE, 64 * 1024, () => t);
    let sent = 0;
    // A reader that reads 64 KiB, then waits as told, for 10 seconds.
    while (t < 10_000) {
      sent += 64 * 1024;
      t += p.charge(64 * 1024);
    }
    expect(sent).toBeLessThanOrEqual(OUTPUT_RATE * 10 + 2 * 64 * 1024);
    expect(sent).toBeGreaterThanOrEqual(OUTPUT_RATE * 10 - 64 * 1024);
  });

  test("a line costs its bytes and LINE_COST more: short lines are paced by their number", () => {
    expect(outputCost(100, 0)).toBe(100);
    expect(outputCost(2, 1)).toBe(2 + LINE_COST);
    // `yes`: 64 KiB of "y\n" is 32,768 lines.
    expect(outputCost(65536, 32768)).toBe(65536 + 32768 * LINE_COST);
  });
});
