/**
 * One cgroup v2 group per service under /sys/fs/cgroup/hero/: escaped
 * grandchildren (double-forked daemons) are found through cgroup.procs,
 * `cgroup.kill` ends the whole tree at once, and memory/CPU come from
 * memory.current and cpu.stat. Every function degrades to a no-op when
 * cgroup2 is not mounted or not writable (tests outside a VM).
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";

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

/** Creates (if needed) the group of a service; returns its path, or null if unavailable. */
export function ensureGroup(service: string): string | null {
  if (!cgroupsAvailable()) return null;
  try {
    if (!existsSync(CGROUP_ROOT)) {
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
