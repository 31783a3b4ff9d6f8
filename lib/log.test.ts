import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { uptime } from "./log.ts";

test("uptime follows /proc/uptime's clock without reading it for every line", async () => {
  const proc = () => Number.parseFloat(readFileSync("/proc/uptime", "latin1").split(" ")[0] ?? "");
  const a = uptime();
  expect(Math.abs(a - proc())).toBeLessThan(0.5);
  await Bun.sleep(120);
  const b = uptime();
  expect(b - a).toBeGreaterThanOrEqual(0.11);
  // Still on the kernel's clock (within half a second: a loaded machine may pause between the two reads).
  expect(Math.abs(b - proc())).toBeLessThan(0.5);
});
