import { expect, test } from "bun:test";
import { LINE_COST, OUTPUT_BURST, OUTPUT_RATE } from "./pace.ts";
import { spawnChild } from "./process.ts";

const spec = (cmd: string, onLine: (s: "stdout" | "stderr", t: string) => void) => ({
  argv: ["sh", "-c", cmd],
  env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  cwd: "/",
  cgroup: null,
  onLine,
});

test("a flood is read no faster than its pacer allows: it waits in write(2)", async () => {
  let lines = 0;
  const c = spawnChild(spec("exec yes", () => lines++));
  const t0 = performance.now();
  await Bun.sleep(2000);
  const s = (performance.now() - t0) / 1000;
  const seen = lines;
  c.signal(9);
  await c.exited;
  // "y\n" costs 2 bytes and a line. Unpaced, `yes` gives PID 1 millions of lines a second.
  const most = (OUTPUT_BURST + OUTPUT_RATE * (s + 0.5)) / (2 + LINE_COST) + 32 * 1024;
  console.log(`process: yes for ${s.toFixed(1)} s gave ${seen} lines (at most ${most.toFixed(0)})`);
  expect(seen).toBeGreaterThan(1000);
  expect(seen).toBeLessThan(most);
}, 20_000);

test("paced, nothing is lost: every line of a burst beyond the budget arrives before the exit", async () => {
  const got: string[] = [];
  let exitedAfter = -1;
  // 60,000 lines cost ~4.2 MB: beyond the burst and more than the pipe holds, so seq
  // waits for the pacer (about 3 s); the last ~100 KB are drained when it exits.
  const t0 = performance.now();
  const c = spawnChild(spec("seq 1 60000; seq 1 10 >&2", (s, t) => got.push(`${s}:${t}`)));
  const info = await c.exited;
  exitedAfter = got.length;
  console.log(`process: 60,010 lines in ${(performance.now() - t0).toFixed(0)} ms`);
  expect(info).toEqual({ code: 0, signal: null });
  expect(exitedAfter).toBe(60010);
  const out = got.filter((l) => l.startsWith("stdout:")).map((l) => Number(l.slice(7)));
  expect(out).toEqual(Array.from({ length: 60000 }, (_, i) => i + 1));
  const err = got.filter((l) => l.startsWith("stderr:")).map((l) => Number(l.slice(7)));
  expect(err).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
}, 30_000);
