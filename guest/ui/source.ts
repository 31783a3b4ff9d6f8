/**
 * What the UI shows and does, as one interface (UiSource), and its
 * implementation over the running supervisor and /proc. The app only talks
 * to a UiSource, so it is tested with a fake one; the JSON API returns
 * exactly these shapes (docs/api.md).
 */

import { readdirSync, readFileSync, readlinkSync, statfsSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { Identity } from "../../lib/identity.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { uptime } from "../../lib/log.ts";
import { isMyceliumAddress } from "../../lib/net-acl.ts";
import { VERSION } from "../../lib/version.ts";
import { stateText } from "../control/api.ts";
import { groupStats } from "../supervisor/cgroup.ts";
import type { LogLine } from "../supervisor/logs.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";

/** One row of the services table. */
export interface ServiceRow {
  name: string;
  /** zinit's state text, e.g. Running, Success, Error(Exited(Pid(7), 3)). */
  state: string;
  target: "Up" | "Down";
  pid: number;
  uptimeMs: number | null;
  restarts: number;
  oneshot: boolean;
  memoryBytes: number | null;
  cpuUsec: number | null;
  /** Why the service is in its state (last exit, config error, blocking dependency). */
  reason: string;
}

/** A service's page: its row, dependencies and spec. */
export interface ServiceDetail extends ServiceRow {
  after: Record<string, string>;
  spec: Record<string, unknown>;
}

/** The overview page. */
export interface Overview {
  hostname: string;
  uptimeS: number;
  load: number[];
  memory: { totalBytes: number; availableBytes: number } | null;
  disks: { mount: string; fstype: string; totalBytes: number; freeBytes: number }[];
  /** Interfaces with their addresses; mycelium addresses first. */
  interfaces: { name: string; addresses: { address: string; mycelium: boolean }[] }[];
  versions: { heroInit: string; binaries: InstalledBinary[] };
  mycelium: unknown;
  /** vm.toml [identity] (farmer id, farming pool, registrars, description), when set. */
  identity?: Identity | null;
}

/** A `[vm]` binary installed in /usr/lib/hero/pkgs/<name>/<version>/. */
export interface InstalledBinary {
  name: string;
  /** The version the current link points at (null: none chosen). */
  current: string | null;
  versions: string[];
}

/** The updates page (the updater fills `manifest` and `lastCheck` once it runs). */
export interface UpdatesView {
  installed: InstalledBinary[];
  manifest: { version: number; env?: string } | null;
  lastCheck: { at: string; result: string } | null;
  /** False until an updater is wired in: the buttons are then disabled. */
  available: boolean;
}

/** A service action. */
export type Action = "start" | "stop" | "restart" | "kill";

/** Everything the UI reads and does. */
export interface UiSource {
  overview(): Overview;
  services(): ServiceRow[];
  service(name: string): ServiceDetail | null;
  logs: {
    /** At most `limit` lines (default: all) with seq > `after`, of one service or of all, oldest first. */
    since(after: number, service?: string, limit?: number): readonly LogLine[];
    subscribe(fn: (l: LogLine) => void): () => void;
  };
  action(name: string, action: Action, signal?: string): Promise<void>;
  bootLog(): readonly string[];
  updates(): UpdatesView;
  /** Present once the updater exists: check, apply, roll back. */
  updater?: {
    check(): Promise<unknown>;
    apply(): Promise<unknown>;
    rollback(): Promise<unknown>;
  };
}

/** Pure: /proc/meminfo → total and available bytes. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } | null {
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
  const total = kb("MemTotal");
  const avail = kb("MemAvailable");
  if (!Number.isFinite(total) || !Number.isFinite(avail)) return null;
  return { totalBytes: total * 1024, availableBytes: avail * 1024 };
}

/** Pure: /proc/mounts → real filesystems worth showing (no proc, sysfs, cgroup…). */
export function diskMounts(text: string): { mount: string; fstype: string }[] {
  const virtual = new Set([
    "proc",
    "sysfs",
    "devtmpfs",
    "devpts",
    "cgroup",
    "cgroup2",
    "securityfs",
    "debugfs",
    "tracefs",
    "mqueue",
    "pstore",
    "bpf",
    "configfs",
    "fusectl",
    "hugetlbfs",
    "binfmt_misc",
    "autofs",
    "efivarfs",
  ]);
  const out: { mount: string; fstype: string }[] = [];
  for (const line of text.split("\n")) {
    const [, mount, fstype] = line.split(" ");
    if (!mount || !fstype || virtual.has(fstype)) continue;
    const m = mount.replace(/\\040/g, " ");
    // A later mount on the same point hides the earlier one (ext4 over the
    // initramfs' rootfs at /): the last entry is what the path shows.
    const i = out.findIndex((d) => d.mount === m);
    if (i >= 0) out[i] = { mount: m, fstype };
    else out.push({ mount: m, fstype });
  }
  return out;
}

const PKGS = LAYOUT.pkgs;

/** The versioned `[vm]` binaries under /usr/lib/hero/pkgs and which one /usr/bin/<name> points at. */
export function installedBinaries(pkgs = PKGS): InstalledBinary[] {
  let names: string[];
  try {
    names = readdirSync(pkgs).sort();
  } catch {
    return [];
  }
  return names.map((name) => {
    let versions: string[] = [];
    try {
      versions = readdirSync(`${pkgs}/${name}`).sort();
    } catch {}
    let current: string | null = null;
    try {
      const target = readlinkSync(`${pkgs}/${name}/current`);
      current = target.split("/").filter(Boolean).at(-2) ?? target;
    } catch {
      try {
        const t = readlinkSync(`/usr/bin/${name}`);
        const m = new RegExp(`/pkgs/${name}/([^/]+)/`).exec(t);
        current = m?.[1] ?? null;
      } catch {}
    }
    return { name, current, versions: versions.filter((v) => v !== "current") };
  });
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** Interfaces with addresses, mycelium first (the address operators browse to). */
export function interfaces(): Overview["interfaces"] {
  const out: Overview["interfaces"] = [];
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    const addresses = (addrs ?? []).map((a) => ({
      address: a.address,
      mycelium: isMyceliumAddress(a.address),
    }));
    addresses.sort((a, b) => Number(b.mycelium) - Number(a.mycelium));
    out.push({ name, addresses });
  }
  out.sort(
    (a, b) =>
      Number(b.addresses.some((x) => x.mycelium)) - Number(a.addresses.some((x) => x.mycelium)) ||
      a.name.localeCompare(b.name),
  );
  return out;
}

/** Options for the supervisor-backed source. */
export interface SourceOptions {
  hostname(): string;
  mycelium?: () => unknown;
  bootLog(): readonly string[];
  updates?: () => Omit<UpdatesView, "installed" | "available">;
  updater?: UiSource["updater"];
  /** The machine's [identity] (lib/identity.ts). */
  identity?: Identity;
  /** Read cgroup stats (false outside PID 1 without cgroups). */
  cgroups?: boolean;
}

/** The UiSource of a running hero-init. */
export function supervisorSource(sup: Supervisor, o: SourceOptions): UiSource {
  const row = (name: string): ServiceRow => {
    const s = sup.status(name);
    const g = o.cgroups === false ? null : groupStats(name);
    return {
      name,
      state: stateText(s),
      target: s.target,
      pid: s.pid,
      uptimeMs: s.uptimeMs,
      restarts: s.restarts,
      oneshot: s.oneshot,
      memoryBytes: g?.memoryBytes ?? null,
      cpuUsec: g?.cpuUsec ?? null,
      reason: s.reason,
    };
  };
  return {
    overview() {
      const disks: Overview["disks"] = [];
      for (const d of diskMounts(read("/proc/mounts"))) {
        try {
          const st = statfsSync(d.mount);
          disks.push({
            ...d,
            totalBytes: st.blocks * st.bsize,
            freeBytes: st.bavail * st.bsize,
          });
        } catch {}
      }
      return {
        hostname: o.hostname(),
        uptimeS: uptime(),
        load: read("/proc/loadavg").split(" ").slice(0, 3).map(Number),
        memory: parseMeminfo(read("/proc/meminfo")),
        disks,
        interfaces: interfaces(),
        versions: { heroInit: VERSION, binaries: installedBinaries() },
        mycelium: o.mycelium?.() ?? null,
        identity: o.identity ?? null,
      };
    },
    services: () => sup.names().map(row),
    service(name) {
      if (!sup.has(name)) return null;
      const s = sup.status(name);
      return {
        ...row(name),
        after: Object.fromEntries(Object.entries(s.after)),
        spec: { ...sup.service(name).spec } as Record<string, unknown>,
      };
    },
    logs: {
      since: (after, service, limit) =>
        limit === undefined
          ? sup.ring.since(after, service)
          : service === undefined
            ? sup.ring.read(undefined, after, limit).lines // by seq: no copy of the whole ring
            : sup.ring.since(after, service).slice(0, limit),
      subscribe: (fn) => sup.ring.subscribe(fn),
    },
    async action(name, action, signal) {
      if (action === "start") sup.start(name);
      else if (action === "stop") await sup.stop(name);
      else if (action === "restart") await sup.restart(name);
      else sup.kill(name, signal ?? "SIGTERM");
    },
    bootLog: o.bootLog,
    updates: () => ({
      installed: installedBinaries(),
      manifest: null,
      lastCheck: null,
      ...(o.updates?.() ?? {}),
      available: o.updater !== undefined,
    }),
    updater: o.updater,
  };
}
