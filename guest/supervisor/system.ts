/**
 * The supervisor's one window on the operating system: processes, service
 * cgroups, signals, time and the inherited environment. Everything the
 * supervisor does to the machine goes through a `SupervisorSystem`;
 * `realSystem()` is the default, and tests pass a fake one so they can drive
 * the whole supervisor without processes and without waiting on the wall
 * clock.
 */
import { readFileSync } from "node:fs";
import { ensureGroup, groupPids, killGroup, removeGroup } from "./cgroup.ts";
import { type NotifySocket, openNotifySocket } from "./notify.ts";
import {
  type AdoptedProcess,
  adoptChild,
  type Child,
  type SpawnSpec,
  spawnChild,
} from "./process.ts";

/** An opaque timer handle (a real Timer, or whatever a fake clock hands out). */
export type TimerHandle = unknown;

/** Time as the supervisor sees it. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timer; undefined (no timer) is fine. */
  clearTimeout(t: TimerHandle | undefined): void;
  sleep(ms: number): Promise<void>;
}

/** The service cgroups (cgroup.ts), by service name. */
export interface ServiceGroups {
  /** Creates the service's group; its path, or null when cgroups are unavailable. */
  ensure(service: string): string | null;
  /** Pids in the group (empty when none or unavailable). */
  pids(service: string): number[];
  /** SIGKILLs the whole group; false when the kernel cannot (no cgroup.kill). */
  kill(service: string): boolean;
  /** Removes the (empty) group. */
  remove(service: string): void;
}

/** Every side effect of the supervisor on the machine. */
export interface SupervisorSystem {
  clock: Clock;
  /** Starts a process; throws (synchronously) when it cannot be started at all. */
  spawn(spec: SpawnSpec): Child;
  /** Takes over a process inherited from the previous hero-init (self-update). */
  adopt(p: AdoptedProcess, onLine: SpawnSpec["onLine"]): Child;
  /** Signals one pid; a process already gone is not an error. */
  signal(pid: number, sig: number): void;
  groups: ServiceGroups;
  /** The environment every service inherits: ours (no loader path) under /etc/environment. */
  environment(): Record<string, string>;
  /**
   * Opens a service's NOTIFY_SOCKET (owned by `uid` when it runs as one);
   * `onMessage` gets each datagram's text. Throws when it cannot.
   */
  notifySocket(
    service: string,
    uid: number | undefined,
    onMessage: (text: string) => void,
  ): NotifySocket;
}

/** Pure: the assignments of an /etc/environment text (`export`, quotes and comments allowed). */
export function parseEnvironment(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim().replace(/^export\s+/, "");
    const eq = line.indexOf("=");
    if (!line || line.startsWith("#") || eq <= 0) continue;
    out[line.slice(0, eq)] = line.slice(eq + 1).replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}

function readEnvironmentFile(): Record<string, string> {
  try {
    return parseEnvironment(readFileSync("/etc/environment", "utf8"));
  } catch {
    return {};
  }
}

function inheritedEnvironment(): Record<string, string> {
  const base: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) base[k] = v;
  delete base.LD_LIBRARY_PATH; // never leak a loader path into services
  return { ...base, ...readEnvironmentFile() };
}

/** The real machine: Bun timers, process.ts, cgroup.ts, process.kill. */
export function realSystem(): SupervisorSystem {
  return {
    clock: {
      now: () => Date.now(),
      setTimeout: (fn, ms) => setTimeout(fn, ms),
      clearTimeout: (t) => clearTimeout(t as Timer | undefined),
      sleep: (ms) => Bun.sleep(ms),
    },
    spawn: (spec) => spawnChild(spec),
    adopt: (p, onLine) => adoptChild(p, onLine),
    signal(pid, sig) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone
      }
    },
    groups: { ensure: ensureGroup, pids: groupPids, kill: killGroup, remove: removeGroup },
    environment: inheritedEnvironment,
    notifySocket: (service, uid, onMessage) => openNotifySocket(service, uid, onMessage),
  };
}
