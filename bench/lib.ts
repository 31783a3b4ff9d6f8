/** Small helpers shared by the benchmarks: stats and `name: value` output. */
import { readFileSync } from "node:fs";

/** Median of numbers. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The p-th percentile (nearest rank). */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** Prints one `name: value` line. */
export function out(name: string, value: string | number): void {
  console.log(`${name}: ${typeof value === "number" ? Number(value.toFixed(3)) : value}`);
}

/** Runs a command and returns stdout (throws on failure). */
export function sh(cmd: string): string {
  const p = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** PSS and RSS (kB) of a pid from /proc/PID/smaps_rollup. */
export function memOf(pid: number): { rssKb: number; pssKb: number } {
  const t = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  return {
    rssKb: Number(/^Rss:\s+(\d+)/m.exec(t)?.[1]),
    pssKb: Number(/^Pss:\s+(\d+)/m.exec(t)?.[1]),
  };
}
