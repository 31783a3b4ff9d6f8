/**
 * One cgroup v2 group per service under /sys/fs/cgroup/hero/: escaped
 * grandchildren (double-forked daemons) are found through cgroup.procs,
 * `cgroup.kill` ends the whole tree at once, and memory/CPU come from
 * memory.current and cpu.stat. The guest agent's execs get one group each
 * too (CGROUP_ROOT/agent:exec/exec-<n>), so a timeout or a disconnect ends
 * what the command started even after it left its process group (setsid).
 * Every function degrades to a no-op when cgroup2 is not mounted or not
 * writable (tests outside a VM).
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  writeFileSync,
} from "node:fs";

/** Root of hero-init's service groups. */
export let CGROUP_ROOT = "/sys/fs/cgroup/hero";

/** Points the service groups somewhere else (init mode inside a test namespace). */
export function setCgroupRoot(path: string): void {
  CGROUP_ROOT = path;
}

/** Whether cgroup2 is usable here. */
export function cgroupsAvailable(): boolean {
  const parent = CGROUP_ROOT.replace(/\/[^/]+$/, "");
  return existsSync(`${parent}/cgroup.controllers`);
}

/** The group directory of a service. */
export function groupOf(service: string): string {
  return `${CGROUP_ROOT}/${service}`;
}

/** Creates CGROUP_ROOT (with accounting for its groups) if needed; throws if it cannot. */
function ensureRoot(): void {
  if (existsSync(CGROUP_ROOT)) return;
  mkdirSync(CGROUP_ROOT);
  // Enable memory and cpu accounting for the service groups (best effort).
  try {
    writeFileSync(
      `${CGROUP_ROOT.replace(/\/[^/]+$/, "")}/cgroup.subtree_control`,
      "+memory +cpu +pids",
    );
    writeFileSync(`${CGROUP_ROOT}/cgroup.subtree_control`, "+memory +cpu +pids");
  } catch {
    // controllers busy or absent: accounting just shows nothing
  }
}

/** Creates (if needed) the group of a service; returns its path, or null if unavailable. */
export function ensureGroup(service: string): string | null {
  if (!cgroupsAvailable()) return null;
  try {
    ensureRoot();
    const dir = groupOf(service);
    if (!existsSync(dir)) mkdirSync(dir);
    return dir;
  } catch {
    return null;
  }
}

/** Pids in a group (empty if none or unavailable). */
export function groupPids(service: string): number[] {
  try {
    return readFileSync(`${groupOf(service)}/cgroup.procs`, "latin1")
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** SIGKILLs every process in the group (cgroup.kill, Linux ≥ 5.14). Returns false if unsupported. */
export function killGroup(service: string): boolean {
  try {
    writeFileSync(`${groupOf(service)}/cgroup.kill`, "1");
    return true;
  } catch {
    return false;
  }
}

/** Removes an empty group (after the service is gone). */
export function removeGroup(service: string): void {
  try {
    rmdirSync(groupOf(service));
  } catch {
    // not empty yet or already gone
  }
}

/** Resource use of a service, from its group. */
export interface GroupStats {
  memoryBytes: number | null;
  cpuUsec: number | null;
  pids: number;
}

/** Pure: usage_usec from cpu.stat text. */
export function cpuUsec(cpuStat: string): number | null {
  const m = /^usage_usec (\d+)$/m.exec(cpuStat);
  return m ? Number(m[1]) : null;
}

/** Reads memory.current and cpu.stat of a service's group. */
export function groupStats(service: string): GroupStats {
  const dir = groupOf(service);
  const read = (f: string) => {
    try {
      return readFileSync(`${dir}/${f}`, "latin1");
    } catch {
      return null;
    }
  };
  const mem = read("memory.current");
  const cpu = read("cpu.stat");
  return {
    memoryBytes: mem === null ? null : Number(mem.trim()),
    cpuUsec: cpu === null ? null : cpuUsec(cpu),
    pids: groupPids(service).length,
  };
}

// ---- one group per guest-agent exec ------------------------------------------

/**
 * The directory under CGROUP_ROOT that holds one group per agent exec
 * (`CGROUP_ROOT/agent:exec/exec-<n>`). Its name cannot be a service name
 * (SERVICE_NAME_RE has no `:`), so it never meets a service's group.
 */
export const AGENT_EXEC_DIR = "agent:exec";

let execSeq = 0;

/** The parent of the exec groups. */
export function execGroupsDir(): string {
  return `${CGROUP_ROOT}/${AGENT_EXEC_DIR}`;
}

/**
 * A fresh, empty group for one agent exec; null when cgroup2 is unavailable
 * or not writable. Empty groups left by earlier execs (whose background
 * children have since exited) are removed first.
 */
export function createExecGroup(): string | null {
  if (!cgroupsAvailable()) return null;
  try {
    ensureRoot();
    const parent = execGroupsDir();
    if (!existsSync(parent)) mkdirSync(parent);
    sweepExecGroups();
    // A name taken by a group that outlived a re-exec of hero-init is skipped, never reused.
    for (let tries = 0; tries < 1000; tries++) {
      const dir = `${parent}/exec-${++execSeq}`;
      try {
        mkdirSync(dir);
        return dir;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
    return null;
  } catch {
    return null;
  }
}

/** Removes every empty exec group (a group with processes left stays; rmdir refuses it). */
export function sweepExecGroups(): void {
  let names: string[];
  try {
    names = readdirSync(execGroupsDir()).filter((n) => n.startsWith("exec-"));
  } catch {
    return;
  }
  for (const n of names) removeGroupDir(`${execGroupsDir()}/${n}`);
}

/** Pids in a group directory (empty if none or unreadable). */
export function pidsIn(dir: string): number[] {
  try {
    return parsePids(readFileSync(`${dir}/cgroup.procs`, "latin1"));
  } catch {
    return [];
  }
}

/** Pure: the pids of a cgroup.procs text. */
export function parsePids(text: string): number[] {
  return text
    .split("\n")
    .filter((l) => /^\d+$/.test(l))
    .map(Number);
}

/** Pure: the `key value` lines of cgroup.events (populated, frozen). */
export function parseCgroupEvents(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^(\w+) (\d+)$/gm)) out[m[1] as string] = Number(m[2]);
  return out;
}

/** How killTree ends a group. */
export interface KillTreeOptions {
  /** Use cgroup.kill when the kernel has it (Linux ≥ 5.14). Default true; false tests the fallback. */
  useKillFile?: boolean;
  /** How long to wait for the group to empty. Default 5000 ms. */
  timeoutMs?: number;
}

/**
 * SIGKILLs every process in a group directory, including the ones that
 * left its session or process group, and waits until the group is empty.
 * With `cgroup.kill` the kernel does it at once. Without (Linux < 5.14)
 * the group is frozen (so nothing in it can fork while it is being
 * killed), every member gets SIGKILL (a fatal signal reaches frozen tasks),
 * then it is thawed; repeated until empty. Resolves true once the group is
 * empty, false if processes are still listed at the deadline. Never throws.
 */
export async function killTree(dir: string, o: KillTreeOptions = {}): Promise<boolean> {
  const deadline = Date.now() + (o.timeoutMs ?? 5000);
  let killFile = o.useKillFile !== false;
  for (;;) {
    if (pidsIn(dir).length === 0) return true;
    if (killFile) {
      try {
        writeFileSync(`${dir}/cgroup.kill`, "1");
      } catch {
        killFile = false;
      }
    }
    if (!killFile) await freezeAndKill(dir);
    if (Date.now() > deadline) return pidsIn(dir).length === 0;
    await Bun.sleep(20);
  }
}

async function freezeAndKill(dir: string): Promise<void> {
  const write = (file: string, v: string) => {
    try {
      writeFileSync(`${dir}/${file}`, v);
      return true;
    } catch {
      return false;
    }
  };
  const frozen = write("cgroup.freeze", "1");
  if (frozen) {
    // Freezing is asynchronous: wait (briefly) until the kernel reports it done.
    for (let i = 0; i < 50; i++) {
      let ev: Record<string, number> = {};
      try {
        ev = parseCgroupEvents(readFileSync(`${dir}/cgroup.events`, "latin1"));
      } catch {
        break;
      }
      if (ev.frozen === 1 || ev.populated === 0) break;
      await Bun.sleep(10);
    }
  }
  for (const pid of pidsIn(dir)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  if (frozen) write("cgroup.freeze", "0");
}

/** Removes a group directory if it is empty; true when it is gone. */
export function removeGroupDir(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT";
  }
}

/** Moves a process into a group directory; false if it could not (the group vanished, no permission). */
export function joinGroupDir(dir: string, pid: number): boolean {
  try {
    writeFileSync(`${dir}/cgroup.procs`, String(pid));
    return true;
  } catch {
    return false;
  }
}
