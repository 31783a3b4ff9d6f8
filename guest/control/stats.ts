/**
 * service_stats as zinit reports it: for the service's process and each of
 * its other processes, the resident memory in bytes and the CPU use in
 * percent of one CPU, measured over SAMPLE_MS. zinit's other processes are
 * the descendants of the main one; hero-init adds the other members of the
 * service's cgroup (a daemon that double-forked away is still the
 * service's). Read from /proc: parsers pure, the sampling below them.
 */
import { readdirSync, readFileSync } from "node:fs";

/** How long CPU use is measured (zinit: 500 ms). */
export const SAMPLE_MS = 500;
/** Processes reported besides the main one, at most (the reply stays bounded). */
export const MAX_CHILDREN = 1000;
/** Clock ticks per second of /proc's times (USER_HZ: 100 on Linux). */
const TICKS_PER_S = 100;

/** One process as /proc/PID/stat has it. */
export interface ProcStat {
  ppid: number;
  /** utime + stime, in clock ticks. */
  ticks: number;
}

/** Pure: the parent and CPU ticks of a /proc/PID/stat line; null if it is not one. */
export function parseStat(text: string): ProcStat | null {
  // The command name (field 2) may hold spaces and parentheses: fields start after the last ")".
  const end = text.lastIndexOf(")");
  if (end < 0) return null;
  const f = text.slice(end + 2).split(" ");
  // f[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  const ppid = Number(f[1]);
  const ticks = Number(f[11]) + Number(f[12]);
  return Number.isFinite(ppid) && Number.isFinite(ticks) ? { ppid, ticks } : null;
}

/** Pure: resident memory in bytes from /proc/PID/status (VmRSS); 0 without it (a zombie). */
export function parseRss(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Pure: the descendants of `root` in a pid → parent table, parents before children. */
export function descendants(root: number, parents: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parents) {
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  const seen = new Set(queue);
  while (queue.length) {
    for (const c of children.get(queue.shift() as number) ?? []) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** Pure: CPU percent of one CPU from ticks used over `ms`. */
export function cpuPercent(ticks: number, ms: number): number {
  if (ms <= 0 || ticks <= 0) return 0;
  const percent = (ticks / TICKS_PER_S / (ms / 1000)) * 100;
  return Math.round(percent * 1000) / 1000;
}

const read = (path: string) => {
  try {
    return readFileSync(path, "latin1");
  } catch {
    return null;
  }
};

/** Every process's stat (a process gone between the listing and the read is left out). */
function allStats(): Map<number, ProcStat> {
  const out = new Map<number, ProcStat>();
  let names: string[] = [];
  try {
    names = readdirSync("/proc");
  } catch {}
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const st = parseStat(read(`/proc/${n}/stat`) ?? "");
    if (st) out.set(Number(n), st);
  }
  return out;
}

/** One process's usage, zinit's fields. */
export interface Usage {
  pid: number;
  memory_usage: number;
  cpu_usage: number;
}

/**
 * The usage of `pid` and of its other processes (`members`: its cgroup's,
 * besides its descendants), measured over SAMPLE_MS.
 */
export async function processUsage(
  pid: number,
  members: readonly number[],
  sleep: (ms: number) => Promise<void> = Bun.sleep,
): Promise<{ main: Usage; children: Usage[] }> {
  const before = allStats();
  const parents = new Map([...before].map(([p, s]) => [p, s.ppid] as const));
  const others = new Set([...descendants(pid, parents), ...members.filter((p) => p !== pid)]);
  const pids = [pid, ...[...others].slice(0, MAX_CHILDREN)];
  const t0 = performance.now();
  await sleep(SAMPLE_MS);
  const ms = performance.now() - t0;
  const usage = pids.map((p): Usage | null => {
    const now = parseStat(read(`/proc/${p}/stat`) ?? "");
    const was = before.get(p);
    if (!now) return null;
    return {
      pid: p,
      memory_usage: parseRss(read(`/proc/${p}/status`) ?? ""),
      cpu_usage: was ? cpuPercent(now.ticks - was.ticks, ms) : 0,
    };
  });
  // Processes gone meanwhile are left out; the main one reads 0 then (zinit's "not found").
  const main = usage[0] ?? { pid, memory_usage: 0, cpu_usage: 0 };
  return { main, children: usage.slice(1).filter((u): u is Usage => u !== null) };
}
