/**
 * The host's view of a job VM's end (pure): the HERO-EXIT sentinel read
 * from the serial console, the exit record written to the deployment
 * directory (docs/jobs.md), the codes of `hero-init job run` when the guest
 * never reported, and the deadline's stop sequence.
 *
 * The console is the guest's, so it is hostile input: only a sentinel at
 * the start of a line counts (service output reaches the console prefixed,
 * "[+] job: …"), the last one wins (PID 1 writes its own after the job has
 * exited), the message is bounded, and the tail kept in the record is
 * bounded, stripped of control characters and of the secrets given.
 */

/** Exit codes of `hero-init job run` besides the job's own (seed 004: 0-4). */
export const JOB_RUN_EXIT = {
  /** The deadline passed; the host stopped the VM. */
  deadline: 124,
  /** The VM ended (crash, panic, power-off) without reporting a code. */
  noReport: 125,
  /** Usage error (not 2: that is a job's "runner download failed"). */
  usage: 64,
  /** The host could not deploy or start the VM (QEMU, kernel, disk). */
  host: 70,
} as const;

/** Bytes of console kept in the exit record. */
export const CONSOLE_TAIL_BYTES = 16 * 1024;
const MESSAGE_MAX = 1024;

/** A job's exit as the guest reported it. */
export interface HeroExit {
  code: number;
  message: string;
}

/** The exit record, `<deployment>/exit.json`. */
export interface ExitRecord {
  /** Format version. */
  version: 1;
  name: string;
  /** The job's code (seed 004's 0-4, a service job's shell code), or 124/125 (JOB_RUN_EXIT). */
  code: number;
  message: string;
  /** How it ended: the guest reported, the deadline passed, or the VM ended silently. */
  outcome: "reported" | "deadline" | "no-report";
  /** Where the code came from: the agent's wait-exit, the console's HERO-EXIT, or the host. */
  source: "agent" | "console" | "host";
  /** The signal that ended the job (from the guest's message), if one did. */
  signal: string | null;
  /** Whether the kernel's OOM killer ended the job. */
  oom: boolean;
  startedAt: string;
  endedAt: string;
  durationMs: number;
  deadlineMs: number;
  /** The deadline's stop steps taken, in order ("agent-shutdown", "acpi", "quit", "kill"). */
  stopSteps: string[];
  qemu: { pid: number; code: number | null; signal: string | null };
  /** The console's last bytes (CONSOLE_TAIL_BYTES), control characters and secrets removed. */
  consoleTail: string;
  /** Whether the disk and secrets were kept (--keep). */
  kept: boolean;
}

const SENTINEL = /^HERO-EXIT code=(\d{1,3}) message="((?:[^"\\\n]|\\.){0,4096})"\s*$/gm;

/** Pure: the last HERO-EXIT line at the start of a line, or null. */
export function parseHeroExit(consoleText: string): HeroExit | null {
  let last: HeroExit | null = null;
  for (const m of consoleText.replaceAll("\r", "").matchAll(SENTINEL)) {
    const code = Number(m[1]);
    if (code > 255) continue;
    const message = (m[2] ?? "").replace(/\\(.)/g, "$1");
    last = { code, message: clean(message).slice(0, MESSAGE_MAX) };
  }
  return last;
}

/** Pure: the signal and OOM flag a guest's message names ("job killed by SIGKILL - OOM"). */
export function exitDetail(message: string): { signal: string | null; oom: boolean } {
  const sig = /\bkilled by (SIG[A-Z0-9]{2,8})\b/.exec(message);
  return { signal: sig?.[1] ?? null, oom: /\bOOM\b/.test(message) };
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI escapes start with ESC.
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]/g;

function clean(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is removed
  return text.replace(ANSI, "").replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
}

/** Pure: the console's last `max` bytes, cleaned, with every secret replaced by [redacted]. */
export function consoleTail(
  text: string,
  secrets: readonly string[] = [],
  max = CONSOLE_TAIL_BYTES,
): string {
  let t = clean(text);
  for (const s of secrets) if (s.length >= 4) t = t.split(s).join("[redacted]");
  const b = Buffer.from(t, "utf8");
  if (b.length <= max) return t;
  // Cut at a line start when one is near, so the tail begins with a whole line.
  const cut = b
    .subarray(b.length - max)
    .toString("utf8")
    .replace(/^\uFFFD+/, "");
  const nl = cut.indexOf("\n");
  return nl >= 0 && nl < 512 ? cut.slice(nl + 1) : cut;
}

/** Pure: the code and message when no report came (kernel panic named when the console shows one). */
export function silentEnd(
  deadlinePassed: boolean,
  deadlineMs: number,
  qemu: { code: number | null; signal: string | null },
  tail: string,
): HeroExit {
  if (deadlinePassed)
    return {
      code: JOB_RUN_EXIT.deadline,
      message: `the job did not report within its deadline (${deadlineMs / 1000} s): the host stopped the VM`,
    };
  const panic = /Kernel panic - not syncing: ([^\n]{0,200})/.exec(tail);
  const how = qemu.signal ? `QEMU killed by ${qemu.signal}` : `QEMU exited ${qemu.code}`;
  return {
    code: JOB_RUN_EXIT.noReport,
    message: `the VM ended without reporting a job code (${how}${panic ? `; kernel panic: ${panic[1]}` : ""})`,
  };
}

/** The deadline's steps: the agent's graceful shutdown, the ACPI power button, QMP quit, SIGKILL. */
export type StopStep = "agent-shutdown" | "acpi" | "quit" | "kill";

/** Pure: the step after `step` (null: nothing left). */
export function nextStopStep(step: StopStep | null): StopStep | null {
  const order: StopStep[] = ["agent-shutdown", "acpi", "quit", "kill"];
  return order[step === null ? 0 : order.indexOf(step) + 1] ?? null;
}
