/**
 * hero-init's own log: one line per event, stamped with seconds since boot
 * (/proc/uptime's clock, so lines line up with the kernel's), written to the console
 * and to /dev/kmsg. Never throws: a full or missing console must not stop
 * PID 1, so every write failure is swallowed.
 */
import { closeSync, openSync, readFileSync, writeSync } from "node:fs";

type Level = "info" | "warn" | "error";
const kmsgLevel: Record<Level, number> = { info: 6, warn: 4, error: 3 };

let consoleFd = 2;
let kmsgFd: number | null = null;
const history: string[] = [];
const HISTORY_MAX = 500;

let anchor: { up: number; at: number } | null = null;

/**
 * Seconds since the kernel started: /proc/uptime read once, then advanced
 * by the monotonic clock (a file read per log line cost PID 1 a system call
 * and a parse on every line; /proc/uptime has 10 ms steps anyway). 0 while
 * /proc/uptime cannot be read.
 */
export function uptime(): number {
  if (!anchor) {
    try {
      const up = Number.parseFloat(readFileSync("/proc/uptime", "latin1").split(" ")[0] ?? "");
      if (!(up > 0)) return 0;
      anchor = { up, at: performance.now() };
    } catch {
      return 0;
    }
  }
  return anchor.up + (performance.now() - anchor.at) / 1000;
}

/** Routes console output to `path` (the chosen console device). */
export function useConsole(path: string): void {
  try {
    const fd = openSync(path, "w");
    if (consoleFd > 2) closeSync(consoleFd);
    consoleFd = fd;
  } catch {
    // keep the inherited stderr
  }
}

/** Starts mirroring log lines into /dev/kmsg (once devtmpfs is mounted). */
export function useKmsg(): void {
  try {
    kmsgFd ??= openSync("/dev/kmsg", "w");
  } catch {
    kmsgFd = null;
  }
}

function emit(level: Level, topic: string, message: string): void {
  const line = `[${uptime().toFixed(3).padStart(9)}] hero-init ${topic}: ${message}`;
  history.push(line);
  if (history.length > HISTORY_MAX) history.shift();
  try {
    writeSync(consoleFd, `${line}\n`);
  } catch {
    // console gone: nothing sensible to do
  }
  if (kmsgFd !== null) {
    try {
      writeSync(kmsgFd, `<${kmsgLevel[level]}>hero-init ${topic}: ${message}`);
    } catch {
      // kmsg rate limiting or EINVAL: the console has it already
    }
  }
}

/** Writes a raw line to the console only (e.g. the HERO-EXIT sentinel). */
export function consoleLine(text: string): void {
  try {
    writeSync(consoleFd, `${text}\n`);
  } catch {
    // ignore
  }
}

/** Logs under a topic (the boot step, "supervisor", "shutdown"…). */
export const log = {
  info: (topic: string, message: string) => emit("info", topic, message),
  warn: (topic: string, message: string) => emit("warn", topic, message),
  error: (topic: string, message: string) => emit("error", topic, message),
};

/** The last lines logged since start (the boot log shown by the UI). */
export function logHistory(): readonly string[] {
  return history;
}

/** A readable one-liner for anything thrown. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}
