/**
 * Boot step 1: the virtual filesystems every program expects. The pre-init
 * already mounted /proc and /dev (Bun cannot start without them); anything
 * already mounted (e.g. handed over by an initramfs) is left as it is.
 */
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { log } from "../../lib/log.ts";
import { MS, mount } from "../../sys/ffi.ts";
import type { BootContext, BootStep } from "./context.ts";

/** A mount hero-init makes at boot. */
export interface MountSpec {
  target: string;
  fstype: string;
  source: string;
  flags: number;
  data?: string;
}

const NSD = MS.NOSUID | MS.NODEV;

/** The boot mounts, in order (parents before children). */
export const BOOT_MOUNTS: readonly MountSpec[] = [
  { target: "/proc", fstype: "proc", source: "proc", flags: NSD | MS.NOEXEC },
  { target: "/sys", fstype: "sysfs", source: "sysfs", flags: NSD | MS.NOEXEC },
  { target: "/dev", fstype: "devtmpfs", source: "devtmpfs", flags: MS.NOSUID, data: "mode=0755" },
  {
    target: "/dev/pts",
    fstype: "devpts",
    source: "devpts",
    flags: MS.NOSUID | MS.NOEXEC,
    data: "gid=5,mode=0620,ptmxmode=0666",
  },
  { target: "/dev/shm", fstype: "tmpfs", source: "shm", flags: NSD, data: "mode=1777" },
  { target: "/run", fstype: "tmpfs", source: "run", flags: NSD, data: "mode=0755" },
  { target: "/tmp", fstype: "tmpfs", source: "tmpfs", flags: NSD, data: "mode=1777" },
  {
    target: "/sys/fs/cgroup",
    fstype: "cgroup2",
    source: "cgroup2",
    flags: NSD | MS.NOEXEC,
    data: "nsdelegate",
  },
];

/** Mount points listed in /proc/self/mountinfo text (field 5), unescaped. */
export function mountPoints(mountinfo: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const target = line.split(" ")[4];
    if (target)
      out.add(
        target.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(Number.parseInt(o, 8))),
      );
  }
  return out;
}

function currentMounts(): Set<string> {
  try {
    return mountPoints(readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    return new Set();
  }
}

/** Mounts `specs` that are not mounted yet; records each in ctx.mounted. */
export function mountAll(ctx: BootContext, specs: readonly MountSpec[]): void {
  const present = currentMounts();
  for (const m of specs) {
    if (present.has(m.target)) {
      ctx.mounted.push(m.target);
      continue;
    }
    try {
      if (!existsSync(m.target)) mkdirSync(m.target, { recursive: true, mode: 0o755 });
      mount(m.source, m.target, m.fstype, m.flags, m.data);
      ctx.mounted.push(m.target);
      log.info("mount", `${m.fstype} on ${m.target}`);
    } catch (e) {
      log.error("mount", `${m.target}: ${(e as Error).message}`);
    }
  }
}

/** The mount step. */
export const mountsStep: BootStep = {
  name: "mounts",
  run: (ctx) => mountAll(ctx, BOOT_MOUNTS),
};
