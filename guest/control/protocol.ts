/**
 * What the control protocols share, pure: the API they call, their errors
 * and codes, the replies they hand the socket server, and the bounds of a
 * reply. Both of zinit's protocols share a socket, told apart by the first
 * byte of a message (framing.ts): `{` (or `[`) is JSON-RPC 2.0 (zinit ≥
 * 0.2.15, jsonrpc.ts over the method table in methods.ts), anything else is
 * the legacy line protocol (legacy.ts: `status redis\n` →
 * `{"state":"ok","body":…}`, then close). The handlers call a
 * {@link ControlApi}; the socket server (server.ts) only moves bytes;
 * errors.ts words refusals as each protocol's zinit did.
 */
import { HeroError } from "../../lib/errors.ts";
import type { ServiceSpecInput } from "../../lib/service-spec.ts";
import type { LogReader } from "../supervisor/logs.ts";

/** What the control protocols can do; implemented by the PID 1 wiring. */
export interface ControlApi {
  list(): Record<string, string>;
  status(name: string): Record<string, unknown>;
  start(name: string): Promise<void> | void;
  stop(name: string): Promise<void> | void;
  restart(name: string): Promise<void>;
  monitor(name: string): Promise<void> | void;
  forget(name: string): void;
  kill(name: string, signal: string): void;
  shutdown(): void;
  reboot(): void;
  create(name: string, content: ServiceSpecInput): string;
  remove(name: string): string;
  get(name: string): Record<string, unknown>;
  /** zinit's service_stats: RSS bytes and CPU percent of the process and of each other process of the service. */
  stats(name: string): Promise<Record<string, unknown>>;
  /** The ring's lines in zinit's format, oldest first (stream_currentLogs). */
  logs(name?: string): string[];
  /** The ring, read by position: followers (`log`, stream_subscribeLogs) take lines as their socket drains. */
  logRing: LogReader;
  mycelium?(method: string, params: unknown): Promise<unknown>;
  /** update_check / update_apply (present when `[update]` is configured). */
  update?(method: string, params: unknown): Promise<unknown>;
}

/**
 * The error a handler throws to produce a zinit error reply: code "control."
 * + its name in RPC ("control.service-not-found"), detail.rpcCode the
 * number the reply carries.
 */
export function controlError(rpcCode: number, message: string): HeroError {
  const name = Object.entries(RPC).find(([, n]) => n === rpcCode)?.[0];
  const code = name ? name.toLowerCase().replaceAll("_", "-") : "other";
  return new HeroError(`control.${code}`, message, {}, { rpcCode });
}

/** zinit's JSON-RPC error codes (openrpc.json). */
export const RPC = {
  PARSE: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL: -32603,
  SERVICE_NOT_FOUND: -32000,
  SERVICE_ALREADY_MONITORED: -32001,
  SERVICE_IS_UP: -32002,
  SERVICE_IS_DOWN: -32003,
  INVALID_SIGNAL: -32004,
  CONFIG_ERROR: -32005,
  SHUTTING_DOWN: -32006,
  SERVICE_ALREADY_EXISTS: -32007,
  SERVICE_FILE_ERROR: -32008,
} as const;

/**
 * A log stream the server runs after writing the reply's text: `history`:
 * the lines the ring holds; `live`: then new lines until the client closes
 * (without it the connection closes once the history is written). `id`:
 * the JSON-RPC subscription (notifications), null for legacy plain lines.
 */
export interface LogFollow {
  name: string | undefined;
  id: number | null;
  history: boolean;
  live: boolean;
}

/** What the server must do with a connection after a reply. */
export type Reply =
  | { kind: "write"; text: string; close: boolean }
  /** `refused`: the answer instead when MAX_FOLLOWERS follow already. */
  | { kind: "stream"; text: string; follow: LogFollow; refused: string };

/** Log streams open at once over all control sockets (each holds a connection open). */
export const MAX_FOLLOWERS = 128;
/** The refusal of a log stream beyond MAX_FOLLOWERS (both protocols word it so). */
export const TOO_MANY_FOLLOWERS = `too many log followers (limit ${MAX_FOLLOWERS}); try again later`;

/** Most bytes of a stream_currentLogs result; older lines are left out beyond it. */
export const MAX_LOG_REPLY = 1024 * 1024;
/** Most bytes of the answers to one batch; its remaining requests are not run. */
export const MAX_BATCH_REPLY = 2 * 1024 * 1024;

/**
 * Pure: the newest of `lines` whose JSON array takes at most `max` bytes,
 * oldest first, after a line saying how many older ones were left out.
 */
export function boundedLogs(lines: readonly string[], max = MAX_LOG_REPLY): string[] {
  let size = 2;
  let i = lines.length;
  while (i > 0) {
    const n = Buffer.byteLength(JSON.stringify(lines[i - 1])) + 1;
    if (size + n > max - 100) break;
    size += n;
    i--;
  }
  if (i === 0) return [...lines];
  return [`[-] zinit: ${i} older lines left out (reply limit ${max} bytes)`, ...lines.slice(i)];
}
