/**
 * The guest agent's wire protocol, shared by the server (in the VM) and the
 * client (on the host). Pure: request schemas (valibot), the exec stream's
 * framing (1 byte channel + 4 byte big-endian length + payload), query
 * parameter parsing, path checks and the shell-like exit code conventions.
 * See docs/agent.md for the API this describes.
 */
import { constants } from "node:os";
import * as v from "valibot";
import { HeroError } from "./errors.ts";

/** URL prefix of every agent route. */
export const API_PREFIX = "/agent/v1";
/** Port the agent listens on (TCP: loopback and mycelium; vsock: the same number). */
export const DEFAULT_AGENT_PORT = 9998;
/** Content type of the exec response body. */
export const STREAM_CONTENT_TYPE = "application/x-hero-agent-stream";

/** Channels of the exec stream. */
export const CH_STDOUT = 1;
export const CH_STDERR = 2;
export const CH_EXIT = 3;
/** Frame header size: channel (1) + length (4). */
export const FRAME_HEADER = 5;
/** Largest payload one frame may carry (the decoder refuses more). */
export const MAX_FRAME_PAYLOAD = 16 * 1024 * 1024;

/** How an exec ended (the payload of the exit frame). */
export interface ExecExit {
  /** Shell-like code: the exit status, 128+N for signal N, 127 not found, 126 not executable, 124 timeout. */
  code: number;
  /** Signal name (SIGKILL) if the process was killed by a signal. */
  signal?: string;
  /** True if the agent killed it because timeout_ms passed. */
  timed_out?: boolean;
  /** Why the process could not start (code 126/127), or other agent-side remark. */
  error?: string;
}

/** One decoded frame. */
export interface Frame {
  channel: number;
  payload: Uint8Array;
}

// ---- schemas -------------------------------------------------------------

const EnvSchema = v.record(
  v.pipe(v.string(), v.regex(/^[^=\0]+$/, "env names must be non-empty, without '=' or NUL")),
  v.pipe(v.string(), v.regex(/^[^\0]*$/, "env values must not contain NUL")),
);
const Argv = v.pipe(
  v.array(v.pipe(v.string(), v.regex(/^[^\0]*$/, "argv items must not contain NUL"))),
  v.minLength(1, "argv must have at least one item"),
  v.maxLength(4096, "argv has too many items"),
  v.check((a) => (a[0] ?? "") !== "", "argv[0] must not be empty"),
);
const Cwd = v.pipe(
  v.string(),
  v.check((p) => p.startsWith("/") && !p.includes("\0"), "cwd must be an absolute path"),
);

/** POST exec body. */
export const ExecRequestSchema = v.strictObject({
  argv: Argv,
  env: v.optional(EnvSchema),
  cwd: v.optional(Cwd),
  timeout_ms: v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(7 * 24 * 3600 * 1000)),
  ),
  stdin: v.optional(
    v.pipe(v.string(), v.base64("stdin must be base64 (standard alphabet, padded)")),
  ),
});
export type ExecRequest = v.InferOutput<typeof ExecRequestSchema>;

/** First message of the exec WebSocket. */
export const WsStartSchema = v.strictObject({
  argv: Argv,
  env: v.optional(EnvSchema),
  cwd: v.optional(Cwd),
  cols: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(1000)), 80),
  rows: v.optional(v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(500)), 24),
  tty: v.optional(v.literal(true, "only tty: true is supported on the WebSocket"), true),
});
export type WsStart = v.InferOutput<typeof WsStartSchema>;

const SignalName = v.pipe(
  v.string(),
  v.check((s) => signalNumber(s) !== null, "unknown signal name"),
);
/** Later text messages of the exec WebSocket. */
export const WsControlSchema = v.union([
  v.strictObject({
    resize: v.strictObject({
      cols: v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(1000)),
      rows: v.pipe(v.number(), v.integer(), v.minValue(2), v.maxValue(500)),
    }),
  }),
  v.strictObject({ signal: SignalName }),
]);

/** POST shutdown body. */
export const ShutdownRequestSchema = v.strictObject({
  kind: v.optional(
    v.picklist(["poweroff", "reboot"], 'kind must be "poweroff" or "reboot"'),
    "poweroff",
  ),
});

/** Parses JSON text against a schema; returns the value or a one-line error. */
export function parseJson<T extends v.GenericSchema>(
  schema: T,
  text: string,
): { ok: true; value: v.InferOutput<T> } | { ok: false; error: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: "body is not valid JSON" };
  }
  const r = v.safeParse(schema, raw);
  if (r.success) return { ok: true, value: r.output };
  const issue = r.issues[0];
  const where = (issue.path ?? []).map((p) => String(p.key)).join(".");
  return { ok: false, error: where ? `${where}: ${issue.message}` : issue.message };
}

// ---- framing ---------------------------------------------------------------

/** Encodes one frame. */
export function encodeFrame(channel: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER + payload.byteLength);
  out[0] = channel;
  new DataView(out.buffer).setUint32(1, payload.byteLength, false);
  out.set(payload, FRAME_HEADER);
  return out;
}

/** Encodes the exit frame. */
export function encodeExit(exit: ExecExit): Uint8Array {
  return encodeFrame(CH_EXIT, new TextEncoder().encode(JSON.stringify(exit)));
}

/**
 * Incremental frame decoder: push arbitrary chunks, get whole frames back.
 * Throws on an unknown channel or an oversized frame (a corrupt stream).
 */
export class FrameDecoder {
  // A growable buffer (capacity doubles, consumed bytes dropped on growth):
  // each byte is copied a bounded number of times whatever the chunk sizes.
  // Merging on every push made 1-byte chunks quadratic (a 70 KB frame took
  // seconds), and a list of chunks would hold ~100 bytes per 1-byte chunk.
  private buf = new Uint8Array(0);
  private start = 0;
  private end = 0;

  push(chunk: Uint8Array): Frame[] {
    this.append(chunk);
    const frames: Frame[] = [];
    while (this.end - this.start >= FRAME_HEADER) {
      const off = this.start;
      const channel = this.buf[off] as number;
      if (channel < CH_STDOUT || channel > CH_EXIT)
        throw new Error(`corrupt exec stream: unknown channel ${channel}`);
      const len = new DataView(this.buf.buffer, off + 1, 4).getUint32(0, false);
      if (len > MAX_FRAME_PAYLOAD) throw new Error(`corrupt exec stream: frame of ${len} bytes`);
      if (this.end - off - FRAME_HEADER < len) break;
      frames.push({
        channel,
        payload: this.buf.slice(off + FRAME_HEADER, off + FRAME_HEADER + len),
      });
      this.start = off + FRAME_HEADER + len;
    }
    if (this.start === this.end) this.start = this.end = 0;
    return frames;
  }

  private append(chunk: Uint8Array): void {
    const held = this.end - this.start;
    if (this.end + chunk.byteLength > this.buf.byteLength) {
      if (held + chunk.byteLength <= this.buf.byteLength / 2) {
        this.buf.copyWithin(0, this.start, this.end); // room enough once the consumed bytes go
      } else {
        const cap = Math.max(held + chunk.byteLength, this.buf.byteLength * 2, 4096);
        const next = new Uint8Array(cap);
        next.set(this.buf.subarray(this.start, this.end), 0);
        this.buf = next;
      }
      this.start = 0;
      this.end = held;
    }
    this.buf.set(chunk, this.end);
    this.end += chunk.byteLength;
  }

  /** Bytes of an incomplete frame still held (non-zero at end of stream = truncated). */
  get pending(): number {
    return this.end - this.start;
  }
}

/** Parses an exit frame's payload. */
export function decodeExit(payload: Uint8Array): ExecExit {
  const x = JSON.parse(new TextDecoder().decode(payload)) as Partial<ExecExit>;
  if (typeof x !== "object" || x === null || typeof x.code !== "number")
    throw new Error("corrupt exec stream: exit frame without a code");
  return x as ExecExit;
}

// ---- exit codes ---------------------------------------------------------------

/** Signal number for a name ("SIGTERM" or "TERM"), or null. */
export function signalNumber(name: string): number | null {
  const key = (name.startsWith("SIG") ? name : `SIG${name}`) as keyof typeof constants.signals;
  const n = Object.hasOwn(constants.signals, key) ? constants.signals[key] : undefined;
  return typeof n === "number" ? n : null;
}

/** Exit code used when the agent's timeout killed the process (GNU timeout's). */
export const TIMEOUT_CODE = 124;

/** The shell-like code for a process that exited with `code` or died of `signal`. */
export function exitCodeOf(code: number | null, signal: string | null): ExecExit {
  if (signal) {
    const n = signalNumber(signal);
    return { code: 128 + (n ?? 0), signal };
  }
  return { code: code ?? 255 };
}

/** The code for a spawn failure: 127 for a missing program, 126 for one that cannot run. */
export function spawnErrorExit(argv0: string, err: unknown): ExecExit {
  const code = (err as { code?: string })?.code;
  const msg = err instanceof Error ? err.message : String(err);
  if (code === "ENOENT" || /ENOENT|no such file|not found/i.test(msg))
    return { code: 127, error: `${argv0}: command not found` };
  return { code: 126, error: `${argv0}: cannot execute: ${msg}` };
}

// ---- query parameters and paths ------------------------------------------------

/** Checks a remote path: absolute, no NUL. Returns an error message or null. */
export function pathError(p: string | null): string | null {
  if (p === null || p === "") return "path is required (?path=/absolute/path)";
  if (!p.startsWith("/")) return `path must be absolute (got "${p}")`;
  if (p.includes("\0")) return "path must not contain NUL";
  if (p.length > 4096) return "path is too long";
  return null;
}

/** Parses an octal mode ("0644", "755"); null if absent; throws a message if invalid. */
export function parseMode(s: string | null): number | null {
  if (s === null || s === "") return null;
  if (!/^[0-7]{1,4}$/.test(s)) throw new Error(`mode must be octal like 0644 (got "${s}")`);
  return Number.parseInt(s, 8);
}

/** Parses a unix time in seconds (fractions allowed); null if absent; throws if invalid. */
export function parseMtime(s: string | null): number | null {
  if (s === null || s === "") return null;
  const n = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s) || !Number.isFinite(n))
    throw new Error(`mtime must be unix seconds like 1700000000 (got "${s}")`);
  return n;
}

/** Parses a uid/gid; null if absent; throws if invalid. */
export function parseId(name: string, s: string | null): number | null {
  if (s === null || s === "") return null;
  if (!/^\d{1,10}$/.test(s) || Number(s) > 0xfffffffe)
    throw new Error(`${name} must be a number (got "${s}")`);
  return Number(s);
}

/** Formats a mode as 4 octal digits. */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

/** The result of GET stat. */
export interface StatResult {
  type: "file" | "directory" | "symlink" | "fifo" | "socket" | "char" | "block" | "unknown";
  size: number;
  /** Permission bits as 4 octal digits ("0644"). */
  mode: string;
  /** Modification time, unix seconds (fractional). */
  mtime: number;
  uid: number;
  gid: number;
  /** The link's target, for a symlink. */
  target?: string;
}

/** What wait-exit returns when the job has ended. */
export interface JobExit {
  code: number;
  message: string;
}

/** Header names of GET files. */
export const H_MODE = "x-hero-mode";
export const H_MTIME = "x-hero-mtime";
export const H_UID = "x-hero-uid";
export const H_GID = "x-hero-gid";
export const H_TYPE = "x-hero-type";
/** A symlink's target, percent-encoded (encodeURIComponent) so any bytes fit a header. */
export const H_TARGET = "x-hero-symlink-target";

/** The result of a write. */
export interface PutResult {
  path: string;
  size: number;
  mode: string;
  mtime: number;
}

// ---- errors --------------------------------------------------------------------

/** The name of each HTTP status the agent answers errors with (the code after "agent."). */
const STATUS_NAMES: Record<number, string> = {
  0: "no-answer",
  400: "bad-request",
  401: "unauthorized",
  403: "forbidden",
  404: "not-found",
  405: "method-not-allowed",
  409: "conflict",
  413: "too-large",
  429: "busy",
  500: "internal",
  502: "bad-gateway",
  507: "no-space",
};

/**
 * A failed agent request, the same on both ends: code "agent." + the
 * status's name ("agent.forbidden"; "agent.http-<status>" for others, or
 * `name` when given), detail.status the HTTP status (0: no answer).
 */
export function agentError(status: number, message: string, name?: string): HeroError {
  const code = name ?? STATUS_NAMES[status] ?? `http-${status}`;
  return new HeroError(`agent.${code}`, message, {}, { status });
}
