/**
 * Attack: a service that floods its output (a bug, or a service author who
 * wants the supervisor slow or the evidence gone), against the real
 * dist/hero-init in a pid namespace. The defences:
 * - the log ring is fair (guest/supervisor/logs.ts): when it is full, the
 *   service holding the most lines loses its oldest, so a flood evicts its
 *   own lines and never a quiet service's;
 * - `log_file` is written by one asynchronous writer per file through a
 *   bounded queue: a fast writer loses lines (counted, and marked in the file
 *   with `[-] zinit: N lines dropped`), never PID 1's time; the file must be
 *   a regular file, opened non-blocking (a FIFO would block PID 1 for ever);
 * - the output pipes are read in slices with a turn for the event loop in
 *   between (guest/supervisor/process.ts), so the control socket answers,
 *   and no faster than the service's pacer allows (guest/supervisor/pace.ts:
 *   1 MiB/s after a 1 MiB burst, a line costing 64 bytes more): the flood
 *   waits in its own write(2). A `yes` still loses lines to a `log_file`:
 *   each 64 KiB slice is 32,768 lines at once, more than its queue holds.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, rawRequest, startDaemon, timedStatus } from "./supervisor-daemon.ts";

let daemon: Daemon | null = null;
afterEach(async () => {
  await daemon?.stop();
  daemon = null;
});

/** Times `n` status requests a second apart; null for one not answered within `ms`. */
async function statusLatencies(
  d: Daemon,
  name: string,
  n: number,
  ms: number,
): Promise<(number | null)[]> {
  const out: (number | null)[] = [];
  for (let i = 0; i < n; i++) {
    out.push(await timedStatus(d.sock, name, ms));
    await Bun.sleep(1000);
  }
  return out;
}

const show = (l: (number | null)[]) =>
  l.map((x) => (x === null ? "none" : `${x.toFixed(0)} ms`)).join(", ");

describe("a flooding service", () => {
  test("does not evict a quiet service's lines from the ring", async () => {
    daemon = await startDaemon({
      quiet: `exec: sh -c "echo quiet-1; echo quiet-2; echo quiet-3; exec sleep 100000"\n`,
      // 25,000 lines a second, in bursts: more than the ring holds, slow enough for the old supervisor.
      flood: `exec: sh -c "while :; do seq 1 5000; sleep 0.2; done"\n`,
    });
    await Bun.sleep(3000);
    const all = (await rawRequest(daemon.sock, "log snapshot\n", 20_000)).split("\n");
    const quiet = (await rawRequest(daemon.sock, "log snapshot quiet\n", 10_000)).split("\n");
    const flood = all.filter((l) => l.startsWith("[+] flood: ")).length;
    console.log(
      `log-flood: ring holds ${all.filter(Boolean).length} lines, ${flood} of the flood, ` +
        `quiet's: ${JSON.stringify(quiet.filter(Boolean))}`,
    );
    expect(flood).toBeGreaterThan(1900);
    expect(quiet.filter(Boolean)).toEqual([
      "[-] quiet: ------------ [start] ------------",
      "[+] quiet: quiet-1",
      "[+] quiet: quiet-2",
      "[+] quiet: quiet-3",
    ]);
  }, 60_000);

  test("to a log_file: status answers within 5 s, lines are dropped and counted, not waited for", async () => {
    let logDir = "";
    daemon = await startDaemon((dir) => {
      logDir = dir;
      return {
        quiet: "exec: sleep 100000\n",
        // It starts once the daemon is up (the old supervisor stopped answering at once).
        flood: `exec: sh -c "sleep 2; exec yes"\nlog_file:\n  path: ${dir}/flood.log\n  max_size: 1048576\n  keep: 2\n`,
      };
    });
    await Bun.sleep(3000);
    const lat = await statusLatencies(daemon, "quiet", 8, 5000);
    console.log(`log-flood: status under a log_file flood: ${show(lat)}`);
    expect(lat.every((x) => x !== null)).toBe(true);
    // The file: whole lines only, and the place of lost lines marked with their count.
    const files = readdirSync(logDir).filter((f) => f.startsWith("flood.log"));
    const text = files.map((f) => readFileSync(join(logDir, f), "utf8")).join("");
    const lines = text.split("\n").filter(Boolean);
    expect(lines.length).toBeGreaterThan(1000);
    const bad = lines.filter(
      (l) =>
        !/^\d{4}-\d\d-\d\dT\S+Z (\[\+\] flood: y|\[-\] zinit: \d+ lines dropped|\[-\] flood: -{12} \[start\] -{12})$/.test(
          l,
        ),
    );
    expect(bad.slice(0, 3)).toEqual([]);
    expect(lines.some((l) => / \[-\] zinit: \d+ lines dropped$/.test(l))).toBe(true);
  }, 90_000);

  test("a log_file that is a FIFO (nobody reads it) does not hang PID 1", async () => {
    daemon = await startDaemon((dir) => {
      const fifo = join(dir, "fifo.log");
      if (Bun.spawnSync(["mkfifo", fifo]).exitCode !== 0) throw new Error("mkfifo failed");
      return {
        // It writes once the daemon is up (the old supervisor hung in open(2) at its first line).
        writer: `exec: sh -c "sleep 3; echo to-the-fifo; exec sleep 100000"\nlog_file:\n  path: ${fifo}\n`,
      };
    });
    await Bun.sleep(4000);
    const lat = await statusLatencies(daemon, "writer", 3, 5000);
    console.log(`log-flood: status with a FIFO log_file: ${show(lat)}`);
    expect(lat.every((x) => x !== null)).toBe(true);
    expect(daemon.output()).toContain("not a regular file");
  }, 60_000);
});
