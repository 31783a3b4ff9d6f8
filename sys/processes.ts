/**
 * Ending a user's processes (update/access.ts: the sessions of a user
 * removed from the manifest, or whose key was revoked): /proc is scanned
 * for processes whose real or effective uid is the user's, and each gets
 * SIGKILL. A scan races with forks, so it repeats until a pass finds none
 * (at most five passes; a process already signalled is not counted again).
 */
import { readdirSync, readFileSync } from "node:fs";

/** Below this uid nothing is ever killed here: system accounts and root are not users hero-init manages. */
const FIRST_USER_UID = 1000;

/**
 * Pure: the real and effective uid of a /proc/PID/status text; null when
 * unreadable or when the process is already dead (a zombie waits only for
 * its parent: killing it again is not progress).
 */
export function statusUids(status: string): [number, number] | null {
  if (/^State:\s+[ZX]/m.test(status)) return null;
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** SIGKILLs every process running as `uid` (real or effective); returns how many were signalled. */
export function killUidProcesses(uid: number, proc = "/proc"): number {
  if (!Number.isInteger(uid) || uid < FIRST_USER_UID)
    throw new Error(`refusing to end the processes of uid ${uid}: not a managed user`);
  const signalled = new Set<number>();
  for (let pass = 0; pass < 5; pass++) {
    let found = 0;
    for (const name of readdirSync(proc)) {
      const pid = Number(name);
      if (!/^\d+$/.test(name) || signalled.has(pid)) continue;
      let ids: [number, number] | null = null;
      try {
        ids = statusUids(readFileSync(`${proc}/${name}/status`, "utf8"));
      } catch {
        continue; // gone meanwhile
      }
      if (!ids || (ids[0] !== uid && ids[1] !== uid)) continue;
      try {
        process.kill(pid, "SIGKILL");
        signalled.add(pid);
        found++;
      } catch {
        // gone meanwhile
      }
    }
    // A pass that found no new process: nothing was forked meanwhile.
    if (found === 0) break;
  }
  return signalled.size;
}
