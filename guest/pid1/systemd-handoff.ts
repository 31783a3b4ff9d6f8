/**
 * The systemd hand-off (vm.toml `init = "systemd"`, docs/images.md): after
 * the early boot (mounts, console, switch root, config, hostname, modules,
 * network) PID 1 writes hero-init's unit into /run/systemd/system and execs
 * the image's systemd as the same PID 1. Loaded only for such a VM.
 *
 * What systemd finds: the API file systems mounted (it adopts mounts that
 * exist: /proc, /sys, /dev, /dev/pts, /dev/shm, /run, /tmp and cgroup2 at
 * /sys/fs/cgroup, the unified hierarchy it requires, with no group of
 * ours in it yet), fds 0-2 on the console, no process of ours left (none
 * is started before the hand-off; a stray one is killed and reaped), the
 * hostname, addresses and /etc/resolv.conf configured. The unit lives in
 * /run (tmpfs): rewritten every boot by the binary that is running, it
 * cannot go stale after a self-update and never touches the image.
 *
 * Any failure before the exec (no systemd in the image, a unit that cannot
 * be written, execve refused) is logged and hero-init simply stays PID 1:
 * the VM boots the usual way.
 */
import { existsSync, mkdirSync, readlinkSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { atomicWrite } from "../../lib/atomic-file.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import { heroInitUnits, type UnitSet } from "../../lib/systemd-units.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import { execve, kill } from "../../sys/ffi.ts";
import { listProcesses, reapOrphans } from "../supervisor/reaper.ts";

/** Where runtime units go (systemd reads it at start; tmpfs, gone at power-off). */
export const RUNTIME_UNIT_DIR = "/run/systemd/system";
/** Where images keep systemd (merged /usr or not). */
const SYSTEMD_BINARIES = ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"];

/**
 * Pure: the systemd to exec, or null with the reason to stay PID 1.
 * "auto" hands off only when the image's own init (renamed aside by the
 * injector) resolved to systemd: an image that booted systemd before
 * hero-init came keeps doing so, any other image is unaffected.
 */
export function chooseSystemd(
  mode: VmConfig["init"],
  fs: { exists: (p: string) => boolean; resolve: (p: string) => string | null },
): { binary: string } | { stay: string } {
  if (mode === "hero") return { stay: 'init = "hero"' };
  const binary = SYSTEMD_BINARIES.find((p) => fs.exists(p));
  if (!binary)
    return { stay: `no systemd in the image (looked for ${SYSTEMD_BINARIES.join(", ")})` };
  if (mode === "auto") {
    const before = fs.resolve(LAYOUT.sbinInitAside);
    if (!before || basename(before) !== "systemd")
      return {
        stay: `init = "auto": the image's own init (${LAYOUT.sbinInitAside}) is not systemd`,
      };
  }
  return { binary };
}

/** Writes the units (files atomically, then the `.wants` links) under `dir`. */
export function writeUnits(set: UnitSet, dir = RUNTIME_UNIT_DIR): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [name, text] of Object.entries(set.files)) atomicWrite(join(dir, name), text, 0o644);
  for (const [link, target] of Object.entries(set.links)) {
    const path = join(dir, link);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    rmSync(path, { force: true });
    symlinkSync(target, path);
  }
}

/** Kills and reaps any process but ours and the kernel's: systemd must start with none. */
function leaveNoProcess(): void {
  const stray = listProcesses().filter(
    (p) => p.pid !== process.pid && p.pid !== 2 && p.ppid !== 2 && p.state !== "Z",
  );
  for (const p of stray) {
    log.warn("systemd", `process ${p.pid} (${p.comm}) left before the hand-off: SIGKILL`);
    try {
      kill(p.pid, 9);
    } catch {
      // gone already
    }
  }
  reapOrphans(true);
}

/** The binary that runs now (the unit starts the same bytes); the boot path behind a private loader. */
function runningBinary(): string {
  try {
    const exe = readlinkSync("/proc/self/exe");
    return exe === LAYOUT.privateLoader ? LAYOUT.heroInit : exe;
  } catch {
    return LAYOUT.heroInit;
  }
}

/**
 * Hands PID 1 to systemd when vm.toml asks for it. Returns (having logged
 * why) only when hero-init stays PID 1.
 */
export function handOffToSystemd(config: VmConfig): void {
  const choice = chooseSystemd(config.init, {
    exists: existsSync,
    resolve: (p) => {
      try {
        return realpathSync(p);
      } catch {
        return null;
      }
    },
  });
  if ("stay" in choice) {
    if (config.init === "systemd")
      log.error("systemd", `no hand-off: ${choice.stay}; hero-init stays PID 1`);
    else log.info("systemd", `no hand-off: ${choice.stay}`);
    return;
  }
  try {
    writeUnits(heroInitUnits({ binary: runningBinary() }));
    leaveNoProcess();
    log.info(
      "systemd",
      `handing PID 1 to ${choice.binary}; hero-init continues as hero-init.service`,
    );
    execve(choice.binary, [choice.binary], {
      TERM: process.env.TERM ?? "linux",
      PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    });
  } catch (e) {
    log.error("systemd", `hand-off failed, hero-init stays PID 1: ${describeError(e)}`);
    rmSync(RUNTIME_UNIT_DIR, { recursive: true, force: true });
  }
}
