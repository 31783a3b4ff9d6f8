/**
 * The final shutdown: run the registered stages (the supervisor stops its
 * services in reverse dependency order), TERM every remaining process, wait
 * until they are gone or a deadline passes, KILL what is left, sync, unmount
 * in reverse order, remount / read-only, and reboot(2). Runs once; a second
 * request while it runs is logged and ignored.
 */
import { readFileSync } from "node:fs";
import { describeError, log } from "../../lib/log.ts";
import { kill, MNT, MS, mount, RB, reboot, sync, umount } from "../../sys/ffi.ts";
import { mountPoints } from "../boot/mounts.ts";
import { listProcesses, reapOrphans } from "../supervisor/reaper.ts";

/** What the machine does at the end. */
export type ShutdownKind = "poweroff" | "reboot" | "halt";

const SIGTERM = 15;
const SIGKILL = 9;
const SIGCONT = 18;

/** A stage run before the final TERM/KILL (e.g. ordered service stop). */
export type ShutdownStage = (kind: ShutdownKind) => Promise<void>;
const stages: ShutdownStage[] = [];
let inProgress: ShutdownKind | null = null;

/** Registers a stage to run first at shutdown, in registration order. */
export function onShutdown(stage: ShutdownStage): void {
  stages.push(stage);
}

/** Pure: processes that still count (not us, not kernel threads, not zombies). */
export function remaining(procs: ReturnType<typeof listProcesses>, self: number): number[] {
  return procs
    .filter((p) => p.pid !== self && p.pid !== 2 && p.ppid !== 2 && p.state !== "Z")
    .map((p) => p.pid);
}

async function waitGone(deadlineMs: number): Promise<number[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    reapOrphans(true);
    const left = remaining(listProcesses(), process.pid);
    if (left.length === 0 || Date.now() >= end) return left;
    await Bun.sleep(50);
  }
}

function unmountAll(): void {
  let targets: string[] = [];
  try {
    targets = [...mountPoints(readFileSync("/proc/self/mountinfo", "utf8"))];
  } catch {
    // /proc gone: nothing to enumerate
  }
  for (const t of targets.reverse()) {
    if (t === "/") continue;
    try {
      umount(t, MNT.DETACH);
    } catch (e) {
      log.warn("shutdown", `umount ${t}: ${(e as Error).message}`);
    }
  }
  try {
    mount("none", "/", null, MS.REMOUNT | MS.RDONLY);
  } catch {
    // an initramfs root cannot go read-only; nothing to flush there anyway
  }
}

/**
 * Shuts the machine down. `graceMs` is how long processes get between TERM
 * and KILL. As PID 1 this ends in reboot(2); outside PID 1 (tests) it
 * stops after killing and calls `exit` instead.
 */
export async function shutdown(
  kind: ShutdownKind,
  reason: string,
  graceMs = 10_000,
): Promise<void> {
  if (inProgress) {
    log.warn(
      "shutdown",
      `${kind} requested (${reason}) while a ${inProgress} is in progress: ignored`,
    );
    return;
  }
  inProgress = kind;
  log.info("shutdown", `${kind}: ${reason}`);
  for (const stage of stages) {
    try {
      await stage(kind);
    } catch (e) {
      log.error("shutdown", `stage failed: ${describeError(e)}`);
    }
  }
  const pid1 = process.pid === 1;
  if (pid1) {
    try {
      kill(-1, SIGTERM);
      kill(-1, SIGCONT);
    } catch {
      // ESRCH: nobody left
    }
    const left = await waitGone(graceMs);
    if (left.length) {
      log.warn(
        "shutdown",
        `${left.length} processes still running after ${graceMs} ms: SIGKILL (${left.slice(0, 10).join(" ")})`,
      );
      try {
        kill(-1, SIGKILL);
      } catch {
        // ESRCH
      }
      await waitGone(2_000);
    }
  }
  log.info("shutdown", "sync and unmount");
  sync();
  if (!pid1) return;
  if (process.env.BUN_BYTECODE_ORDER_OUT) {
    // A recording VM (scripts/record-bytecode-order.ts): Bun writes the profile of the
    // functions this run used only when the process exits, so PID 1 exits here, with the
    // profile's disk still mounted, instead of calling reboot(2); the kernel panics after.
    // Only that VM's command line sets it. (process.exit is refused in PID 1: run.ts.)
    log.warn("shutdown", "exiting to write the bytecode-order profile (recording VM)");
    (process as unknown as { reallyExit(code: number): never }).reallyExit(0);
  }
  unmountAll();
  sync();
  log.info(
    "shutdown",
    kind === "reboot" ? "rebooting" : kind === "halt" ? "halting" : "powering off",
  );
  try {
    reboot(kind === "reboot" ? RB.AUTOBOOT : kind === "halt" ? RB.HALT : RB.POWER_OFF);
  } catch (e) {
    log.error("shutdown", `reboot(2) failed: ${describeError(e)}`);
  }
}
