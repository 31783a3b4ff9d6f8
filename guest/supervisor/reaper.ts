/**
 * Reaping orphans without stealing Bun's children.
 *
 * As PID 1 every orphan is reparented to us and must be waited for, or it
 * stays a zombie forever. The classic waitpid(-1) loop would also collect the
 * children Bun.spawn started, and their `exited` promises would then reject
 * with ECHILD. So we scan /proc for zombies whose parent is us and wait for
 * each by pid, skipping the pids our process wrapper spawned (Bun reaps
 * those). JS is single-threaded and Bun.spawn returns the pid synchronously,
 * so a spawned pid is always registered before a scan can see it.
 */
import { readdirSync, readFileSync } from "node:fs";
import { waitpidNoHang } from "../../sys/ffi.ts";

/** Pids started by Bun.spawn through hero-init's process wrapper: Bun reaps them. */
export const ownedPids = new Set<number>();

/**
 * Services adopted across a self-update (re-exec): they are our children but
 * not Bun's, so the reaper waits for them and hands over the wait status.
 */
export const adoptedPids = new Map<number, (status: number) => void>();

/** Pure: a raw wait status as an exit code or a signal number. */
export function decodeWaitStatus(status: number): { code: number | null; signal: number | null } {
  const sig = status & 0x7f;
  if (sig === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: null, signal: sig };
}

/** The fields of /proc/PID/stat we need. */
export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
}

/** Parses /proc/PID/stat (comm may contain spaces and parentheses). Pure. */
export function parseStat(text: string): ProcStat | null {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return null;
  const rest = text.slice(close + 2).split(" ");
  const pid = Number.parseInt(text.slice(0, open), 10);
  const ppid = Number.parseInt(rest[1] ?? "", 10);
  if (!Number.isFinite(pid) || !Number.isFinite(ppid)) return null;
  return { pid, comm: text.slice(open + 1, close), state: rest[0] ?? "?", ppid };
}

/** Every process visible in /proc (unreadable entries are skipped: they just exited). */
export function listProcesses(): ProcStat[] {
  const out: ProcStat[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = parseStat(readFileSync(`/proc/${name}/stat`, "latin1"));
      if (st) out.push(st);
    } catch {
      // raced with exit
    }
  }
  return out;
}

/** Pure: the zombies that are ours to reap. */
export function zombiesToReap(
  procs: readonly ProcStat[],
  self: number,
  owned: ReadonlySet<number>,
): number[] {
  return procs
    .filter((p) => p.state === "Z" && p.ppid === self && !owned.has(p.pid))
    .map((p) => p.pid);
}

/** Reaps orphaned zombies; `all` also takes Bun's own (used only at final shutdown). Returns the count. */
export function reapOrphans(all = false): number {
  let n = 0;
  for (const pid of zombiesToReap(listProcesses(), process.pid, all ? new Set() : ownedPids)) {
    try {
      const w = waitpidNoHang(pid);
      if (w) {
        n++;
        const adopted = adoptedPids.get(pid);
        if (adopted) {
          adoptedPids.delete(pid);
          adopted(w.status);
        }
      }
    } catch {
      // ECHILD: someone else (Bun) got it first
    }
  }
  return n;
}

let scheduled = false;

/** Reaps soon (coalescing bursts of SIGCHLD into one /proc scan). */
export function scheduleReap(): void {
  if (scheduled) return;
  scheduled = true;
  setTimeout(() => {
    scheduled = false;
    try {
      const n = reapOrphans();
      // A burst may continue while we scan: look again until quiet.
      if (n > 0) scheduleReap();
    } catch {
      // /proc unreadable: try on the next signal or tick
    }
  }, 5);
}
