import { describe, expect, test } from "bun:test";
import { cpuPercent, descendants, parseRss, parseStat, processUsage } from "./stats.ts";

describe("/proc parsers", () => {
  test("stat: parent and CPU ticks, a command name with spaces and parentheses", () => {
    const line = "42 (a (b) c) S 7 42 42 0 -1 4194304 100 0 0 0 30 12 0 0 20 0 1 0 5 1000 200";
    expect(parseStat(line)).toEqual({ ppid: 7, ticks: 42 });
    expect(parseStat("garbage")).toBeNull();
  });

  test("status: VmRSS in bytes; none (a zombie) is 0", () => {
    expect(parseRss("Name:\tx\nVmRSS:\t    1234 kB\nThreads:\t1\n")).toBe(1234 * 1024);
    expect(parseRss("Name:\tx\n")).toBe(0);
  });

  test("descendants: children, grandchildren, never the root or a loop", () => {
    const parents = new Map([
      [2, 1],
      [3, 2],
      [4, 3],
      [5, 1],
      [6, 9],
      [1, 4],
    ]);
    expect(descendants(2, parents).sort()).toEqual([1, 3, 4, 5]);
    expect(descendants(6, parents)).toEqual([]);
  });

  test("CPU percent of one CPU", () => {
    expect(cpuPercent(50, 500)).toBe(100);
    expect(cpuPercent(0, 500)).toBe(0);
    expect(cpuPercent(5, 0)).toBe(0);
  });
});

describe("processUsage (this machine's /proc)", () => {
  test("a busy child of a shell: its own RSS and CPU; gone processes left out", async () => {
    const p = Bun.spawn(["sh", "-c", "while :; do :; done & wait"], { stdout: "ignore" });
    try {
      await Bun.sleep(100);
      const r = await processUsage(p.pid, [999_999_999]);
      expect(r.main.pid).toBe(p.pid);
      expect(r.main.memory_usage).toBeGreaterThan(0);
      expect(r.children.length).toBe(1);
      const [busy] = r.children;
      expect(busy?.memory_usage).toBeGreaterThan(0);
      // A spinning loop uses a CPU; a loaded machine gives it less (no upper-bound claim).
      expect(busy?.cpu_usage).toBeGreaterThan(5);
    } finally {
      Bun.spawnSync(["pkill", "-KILL", "-P", String(p.pid)]);
      p.kill("SIGKILL");
    }
  });
});
