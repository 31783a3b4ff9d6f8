/**
 * Service logs: a ring of timestamped lines shared by all services (zinit's
 * `-b`, default 2000 lines), live subscribers (`zinit log`, SSE in the UI),
 * and optional size-rotated files per service. The ring and line splitter
 * are pure; only RotatingFile touches the disk.
 */
import { appendFileSync, mkdirSync, renameSync, statSync } from "node:fs";
import { dirname } from "node:path";

/** One log line. `seq` is global and increasing (SSE Last-Event-ID resumes on it). */
export interface LogLine {
  seq: number;
  time: number; // ms since epoch
  service: string;
  stream: "stdout" | "stderr";
  text: string;
}

/** zinit's rendering: `[+] name: text` for stdout, `[-] name: text` for stderr. */
export function formatZinit(l: LogLine): string {
  return `${l.stream === "stdout" ? "[+]" : "[-]"} ${l.service}: ${l.text}`;
}

/** A bounded ring of lines with subscribers. */
export interface LogRing {
  push(service: string, stream: LogLine["stream"], text: string): LogLine;
  /** Lines with seq > `after`, optionally for one service. */
  since(after: number, service?: string): LogLine[];
  subscribe(fn: (l: LogLine) => void): () => void;
  readonly capacity: number;
}

/** Creates a ring keeping the last `capacity` lines. */
export function createRing(capacity = 2000, now: () => number = Date.now): LogRing {
  const buf: LogLine[] = [];
  const subs = new Set<(l: LogLine) => void>();
  let seq = 0;
  return {
    capacity,
    push(service, stream, text) {
      const line: LogLine = { seq: ++seq, time: now(), service, stream, text };
      buf.push(line);
      if (buf.length > capacity) buf.splice(0, buf.length - capacity);
      for (const fn of subs) {
        try {
          fn(line);
        } catch {
          // a broken subscriber must not stop logging
        }
      }
      return line;
    },
    since(after, service) {
      return buf.filter((l) => l.seq > after && (service === undefined || l.service === service));
    },
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
  };
}

/** Longest line kept; longer ones are cut so one runaway writer cannot eat memory. */
export const MAX_LINE = 8192;

/** Splits a byte stream into lines, keeping the partial tail between chunks. Pure. */
export function lineSplitter(onLine: (text: string) => void) {
  const dec = new TextDecoder();
  let tail = "";
  return {
    push(chunk: Uint8Array) {
      tail += dec.decode(chunk, { stream: true });
      let nl = tail.indexOf("\n");
      while (nl >= 0) {
        onLine(tail.slice(0, nl).replace(/\r$/, "").slice(0, MAX_LINE));
        tail = tail.slice(nl + 1);
        nl = tail.indexOf("\n");
      }
      if (tail.length > MAX_LINE) {
        onLine(tail.slice(0, MAX_LINE));
        tail = "";
      }
    },
    end() {
      tail += dec.decode();
      if (tail) onLine(tail.slice(0, MAX_LINE));
      tail = "";
    },
  };
}

/** Pure: the renames that rotate `path` keeping `keep` old files, oldest first. */
export function rotationPlan(path: string, keep: number): [string, string][] {
  const plan: [string, string][] = [];
  for (let i = keep - 1; i >= 1; i--) plan.push([`${path}.${i}`, `${path}.${i + 1}`]);
  plan.push([path, `${path}.1`]);
  return plan;
}

/** A log file rotated by size × count. Errors are reported once, never thrown. */
export function rotatingFile(
  path: string,
  maxSize: number,
  keep: number,
  onError: (msg: string) => void,
) {
  let size = 0;
  let failed = false;
  try {
    mkdirSync(dirname(path), { recursive: true });
    size = statSync(path).size;
  } catch {
    size = 0;
  }
  return {
    write(line: string) {
      const data = `${line}\n`;
      try {
        if (size + data.length > maxSize && size > 0) {
          for (const [from, to] of rotationPlan(path, keep)) {
            try {
              renameSync(from, to);
            } catch {
              // that generation does not exist yet
            }
          }
          size = 0;
        }
        appendFileSync(path, data);
        size += Buffer.byteLength(data);
        failed = false;
      } catch (e) {
        if (!failed) onError(`${path}: ${(e as Error).message}`);
        failed = true;
      }
    },
  };
}
