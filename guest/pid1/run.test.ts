import { describe, expect, test } from "bun:test";
import { readyLine } from "./run.ts";

describe("the READY line", () => {
  test("names the pre-init's exec time when a pre-init exec'ed hero-init", () => {
    expect(readyLine(3.2504, 1.1, 0.9, 0)).toBe(
      "READY at 3.250 s uptime; hero-init started at 1.100 s, pre-init exec'ed it at 0.900 s; 0 config errors",
    );
  });

  test("leaves it out without a pre-init (systemd's unit): no NaN", () => {
    const line = readyLine(12.5, 12.1, Number.NaN, 2);
    expect(line).toBe("READY at 12.500 s uptime; hero-init started at 12.100 s; 2 config errors");
    expect(line).not.toContain("NaN");
  });
});
