/** Small helpers shared by the benchmarks: stats and `name: value` output (ratios last). */
import { readFileSync } from "node:fs";

/** Median of numbers (NaN for none). */
export function median(xs: number[]): number {
  if (!xs.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The p-th percentile (nearest rank; NaN for none). */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}

/** Prints one `name: value` line (numbers rounded to 3 decimals; NaN as n/a). */
export function out(name: string, value: string | number): void {
  const v =
    typeof value === "number" ? (Number.isFinite(value) ? Number(value.toFixed(3)) : "n/a") : value;
  console.log(`${name}: ${v}`);
}

const ratios: [string, number][] = [];

/** Records a ratio line; printed by printRatios() after every other line. */
export function ratio(name: string, value: number): void {
  ratios.push([name, value]);
}

/** Prints the recorded ratio lines (call once, at the very end). */
export function printRatios(): void {
  for (const [n, v] of ratios.splice(0)) out(n, v);
}

/** Runs a command and returns stdout (throws on failure). */
export function sh(cmd: string): string {
  const p = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** Parses the Rss and Pss lines (kB) of an smaps_rollup text (NaN when absent). */
export function parseRollup(t: string): { rssKb: number; pssKb: number } {
  return {
    rssKb: Number(/Rss:\s+(\d+)/.exec(t)?.[1] ?? Number.NaN),
    pssKb: Number(/Pss:\s+(\d+)/.exec(t)?.[1] ?? Number.NaN),
  };
}

/** PSS and RSS (kB) of a pid from /proc/PID/smaps_rollup. */
export function memOf(pid: number): { rssKb: number; pssKb: number } {
  return parseRollup(readFileSync(`/proc/${pid}/smaps_rollup`, "utf8"));
}
