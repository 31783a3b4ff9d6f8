/**
 * `hero-init vm run`'s QEMU lifetime: a Ctrl-C powers the VM off, it does
 * not kill it.
 *
 * A Ctrl-C in a terminal is the kernel's line discipline sending SIGINT to
 * the terminal's whole foreground process group. QEMU used to be in that
 * group, so it got the SIGINT too and ended at once ("terminating on signal
 * 2"): the guest never shut down and a disk VM lost what it had not
 * written. QEMU now runs in a session of its own (Bun.spawn `detached`,
 * setsid(2)), so only hero-init gets the signal, and:
 *
 *   1st Ctrl-C (or SIGTERM, SIGHUP)  press the ACPI power button (QMP
 *                                    system_powerdown) and give the guest
 *                                    `powerdownTimeoutMs` to power off
 *   2nd Ctrl-C, or the timeout       stop QEMU: QMP `quit` (QEMU closes its
 *                                    disk images), SIGKILL `quitGraceMs` later
 *   3rd Ctrl-C                       SIGKILL now
 *
 * Exit codes (vmRunExitCode): 0 the VM powered off (QEMU ended on its own
 * with 0), 124 the power-down timed out and QEMU was stopped, 130 stopped by
 * a second Ctrl-C, otherwise QEMU's own code (128+N for a signal it died
 * of). QEMU in its own session also means it outlives a `vm run` that is
 * SIGKILLed; its pid is printed at start.
 */
import { constants } from "node:os";
import { qmpCommand } from "./qmp.ts";

/** Where the stop sequence is. */
export type StopPhase = "running" | "powering-down" | "stopping" | "killed";
/** What happens to it: a Ctrl-C (or SIGTERM/SIGHUP), or the power-down timeout. */
export type StopEvent = "interrupt" | "timeout";
/** What to do now. */
export type StopAction = "powerdown" | "force" | "kill" | null;

/** Exit codes of `vm run` besides QEMU's own. */
export const VM_RUN_EXIT = { poweroff: 0, timeout: 124, interrupted: 130 } as const;

/** Pure: the next phase and action for an event. */
export function stopStep(
  phase: StopPhase,
  event: StopEvent,
): { phase: StopPhase; action: StopAction } {
  switch (phase) {
    case "running":
      return event === "interrupt"
        ? { phase: "powering-down", action: "powerdown" }
        : { phase, action: null };
    case "powering-down":
      return { phase: "stopping", action: "force" };
    case "stopping":
      return event === "interrupt" ? { phase: "killed", action: "kill" } : { phase, action: null };
    default:
      return { phase, action: null };
  }
}

/** Pure: `vm run`'s exit code from why it forced a stop (if it did) and how QEMU ended. */
export function vmRunExitCode(
  forcedBy: StopEvent | null,
  qemu: { code: number | null; signal: string | null },
): number {
  if (forcedBy === "interrupt") return VM_RUN_EXIT.interrupted;
  if (forcedBy === "timeout") return VM_RUN_EXIT.timeout;
  if (qemu.signal) {
    const n = (constants.signals as Record<string, number>)[qemu.signal];
    return n ? 128 + n : 1;
  }
  return qemu.code ?? 1;
}

/** Pure: parses `--powerdown-timeout` (seconds, > 0, ≤ 1 day); an error message or the milliseconds. */
export function parsePowerdownTimeout(s: string): number | string {
  if (!/^\d+(\.\d+)?$/.test(s.trim()))
    return `--powerdown-timeout: expected seconds (a number > 0), got "${s}"`;
  const sec = Number(s);
  if (!(sec > 0 && sec <= 86_400))
    return `--powerdown-timeout: must be more than 0 and at most 86400 seconds, got ${s}`;
  return Math.round(sec * 1000);
}

/** How to run QEMU. */
export interface VmRunOptions {
  /** QEMU's argv (qemuArgs()); argv[0] is looked up in PATH. */
  argv: string[];
  /** QEMU's QMP socket (the argv must create it). */
  qmpSocket: string;
  /** How long the guest has to power off after the power button. */
  powerdownTimeoutMs: number;
  /** After QMP `quit`, how long before SIGKILL. Default 5000. */
  quitGraceMs?: number;
  /** One line for the operator (stderr). */
  say: (line: string) => void;
}

const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;

/** Runs QEMU until it ends; Ctrl-C as described above. Resolves with vm run's exit code. */
export async function runVm(o: VmRunOptions): Promise<number> {
  const quitGraceMs = o.quitGraceMs ?? 5000;
  const say = (line: string) => {
    try {
      o.say(`vm run: ${line}`);
    } catch {
      // the terminal is gone (SIGHUP): go on powering off
    }
  };
  const proc = Bun.spawn(o.argv, {
    stdin: "ignore",
    stdout: "inherit",
    stderr: "inherit",
    // Its own session: the terminal's Ctrl-C (SIGINT to the foreground process group) does not reach it.
    detached: true,
  });
  say(`QEMU pid ${proc.pid}`);
  let phase: StopPhase = "running";
  let forcedBy: StopEvent | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const running = () => proc.exitCode === null && proc.signalCode === null;

  const pressButton = async () => {
    let complained = false;
    // QMP is not up in QEMU's first instants: retry until it answers, the stop moves on or QEMU ends.
    while (phase === "powering-down" && running()) {
      try {
        await qmpCommand(o.qmpSocket, "system_powerdown");
        return;
      } catch (e) {
        if (!complained)
          say(`cannot press the power button yet (${(e as Error).message}); retrying`);
        complained = true;
      }
      await Bun.sleep(500);
    }
  };

  const force = async () => {
    killTimer = setTimeout(() => {
      if (!running()) return;
      say(`QEMU is still running ${secs(quitGraceMs)} after quit: SIGKILL`);
      proc.kill("SIGKILL");
    }, quitGraceMs);
    try {
      // quit: QEMU stops the guest and closes its disk images (what the guest had not written is lost).
      await qmpCommand(o.qmpSocket, "quit");
    } catch {
      // it may close the connection before answering; the SIGKILL above covers a dead QMP
    }
  };

  const handle = (event: StopEvent) => {
    if (!running()) return;
    const step = stopStep(phase, event);
    phase = step.phase;
    if (step.action === "powerdown") {
      say(
        `pressing the power button (ACPI); the guest has ${secs(o.powerdownTimeoutMs)} to power off. Ctrl-C again stops it at once.`,
      );
      timer = setTimeout(() => handle("timeout"), o.powerdownTimeoutMs);
      void pressButton();
    } else if (step.action === "force") {
      forcedBy = event;
      clearTimeout(timer);
      say(
        event === "timeout"
          ? `the guest did not power off within ${secs(o.powerdownTimeoutMs)}: stopping QEMU (what the guest had not written to disk is lost)`
          : "second Ctrl-C: stopping QEMU now (what the guest had not written to disk is lost)",
      );
      void force();
    } else if (step.action === "kill") {
      say("third Ctrl-C: SIGKILL");
      proc.kill("SIGKILL");
    }
  };
  const onSignal = () => handle("interrupt");
  const signals = ["SIGINT", "SIGTERM", "SIGHUP"] as const;
  for (const s of signals) process.on(s, onSignal);
  try {
    await proc.exited;
  } finally {
    for (const s of signals) process.off(s, onSignal);
    clearTimeout(timer);
    clearTimeout(killTimer);
  }
  const qemu = { code: proc.exitCode, signal: proc.signalCode ? String(proc.signalCode) : null };
  const code = vmRunExitCode(forcedBy, qemu);
  if (forcedBy === null && code === 0) say("the VM powered off");
  else if (forcedBy === null)
    say(`QEMU ended with ${qemu.signal ? `signal ${qemu.signal}` : `code ${qemu.code}`}`);
  else say(`QEMU stopped (exit ${code})`);
  return code;
}
