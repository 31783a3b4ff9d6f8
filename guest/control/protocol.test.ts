import { describe, expect, test } from "bun:test";
import { boundedLogs } from "./protocol.ts";

describe("boundedLogs", () => {
  test("everything when it fits; the newest that fit otherwise", () => {
    expect(boundedLogs(["a", "b"], 1000)).toEqual(["a", "b"]);
    const many = Array.from({ length: 100 }, (_, i) => `line ${String(i).padStart(3, "0")}`);
    const out = boundedLogs(many, 400);
    expect(out[0]).toMatch(/^\[-\] zinit: \d+ older lines left out \(reply limit 400 bytes\)$/);
    expect(out.at(-1)).toBe("line 099");
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(400);
  });
});
