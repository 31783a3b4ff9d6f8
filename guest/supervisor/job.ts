/**
 * Job mode (hypeman's exec mode, the HyperFleet seed): the VM config names
 * one service as the VM's job. When it exits, PID 1 writes one
 * machine-parseable line to the console,
 *   HERO-EXIT code=<N> message="<text>"
 * then shuts down in order and powers off. Codes follow the shell: 128+N for
 * signal N, 137 + "OOM" when the kernel's OOM killer ended it, 126/127 for a
 * command that could not be executed / found.
 */
import { closeSync, constants, openSync, readFileSync, readSync } from "node:fs";
import { SIGNALS } from "../../lib/service-spec.ts";
import type { ExitInfo } from "./process.ts";

/** Pure: the exit code and message for a job's end. */
export function jobExit(
  exit: ExitInfo,
  oom: boolean,
  stderrTail: string[] = [],
): { code: number; message: string } {
  if (exit.signal) {
    const n = SIGNALS[exit.signal] ?? 0;
    if (oom) return { code: 137, message: "killed by SIGKILL - OOM" };
    return { code: 128 + n, message: `killed by ${exit.signal}` };
  }
  const code = exit.code ?? 1;
  if (code === 127) return { code, message: `command not found${tail(stderrTail)}` };
  if (code === 126) return { code, message: `command not executable${tail(stderrTail)}` };
  return { code, message: code === 0 ? "success" : `exit status ${code}` };
}

function tail(lines: string[]): string {
  const last = lines.at(-1);
  return last ? `: ${last}` : "";
}

/** Pure: the sentinel line (quotes and newlines in the message escaped). */
export function heroExitLine(code: number, message: string): string {
  const safe = message
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/[\r\n]+/g, " ");
  return `HERO-EXIT code=${code} message="${safe}"`;
}

/** Pure: OOM kills recorded in a cgroup's memory.events text. */
export function oomKills(memoryEvents: string): number {
  const m = /^oom_kill (\d+)$/m.exec(memoryEvents);
  return m ? Number(m[1]) : 0;
}

/** Pure: whether kernel log text shows the OOM killer ending `pid`. */
export function kmsgShowsOom(kmsg: string, pid: number): boolean {
  return new RegExp(
    `(Out of memory|oom-kill|Memory cgroup out of memory).*Killed process ${pid}\\b|Killed process ${pid} `,
  ).test(kmsg);
}

/** Whether the OOM killer ended the job: its cgroup's memory.events, else /dev/kmsg. */
export function wasOomKilled(cgroupDir: string | null, pid: number): boolean {
  if (cgroupDir) {
    try {
      if (oomKills(readFileSync(`${cgroupDir}/memory.events`, "latin1")) > 0) return true;
    } catch {
      // no memory controller: fall back to the kernel log
    }
  }
  return kmsgShowsOom(readKmsg(), pid);
}

function readKmsg(): string {
  // /dev/kmsg blocks at the end of the buffer; read what is there without waiting.
  try {
    const fd = openSync("/dev/kmsg", constants.O_RDONLY | constants.O_NONBLOCK);
    const buf = Buffer.alloc(8192);
    const out: string[] = [];
    try {
      for (let i = 0; i < 4096; i++) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        out.push(buf.toString("utf8", 0, n));
      }
    } catch {
      // EAGAIN: end of buffer
    }
    closeSync(fd);
    return out.join("");
  } catch {
    return "";
  }
}
