/**
 * The control protocols, pure: one request line in, replies out. Both of
 * zinit's protocols share a socket, told apart by the first byte of a line:
 * `{` (or `[`) is JSON-RPC 2.0 (zinit ≥ 0.2.15), anything else is the legacy
 * line protocol (`status redis\n` → `{"state":"ok","body":…}`, then close).
 * The handlers call a {@link ControlApi}; the socket server (server.ts) only
 * moves bytes.
 */
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
  stats(name: string): Record<string, unknown>;
  /** The ring's lines in zinit's format, oldest first (stream_currentLogs). */
  logs(name?: string): string[];
  /** The ring, read by position: followers (`log`, stream_subscribeLogs) take lines as their socket drains. */
  logRing: LogReader;
  mycelium?(method: string, params: unknown): Promise<unknown>;
  /** update_check / update_apply (present when `[update]` is configured). */
  update?(method: string, params: unknown): Promise<unknown>;
}

/** An error a handler throws to produce a zinit error reply. */
export class ControlError extends Error {
  constructor(
    readonly rpcCode: number,
    message: string,
  ) {
    super(message);
  }
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
const TOO_MANY_FOLLOWERS = `too many log followers (limit ${MAX_FOLLOWERS}); try again later`;

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

const legacyOk = (body: unknown): Reply => ({
  kind: "write",
  text: `${JSON.stringify({ state: "ok", body })}\n`,
  close: true,
});
const legacyErr = (msg: string): Reply => ({
  kind: "write",
  text: `${JSON.stringify({ state: "error", body: msg })}\n`,
  close: true,
});

function argName(args: string[], cmd: string): string {
  const n = args[0];
  if (!n) throw new ControlError(RPC.INVALID_PARAMS, `${cmd}: missing service name`);
  return n;
}

/** Handles one legacy line (`cmd args`). */
export async function handleLegacy(api: ControlApi, line: string): Promise<Reply> {
  const [cmd = "", ...args] = line.trim().split(/\s+/);
  try {
    switch (cmd) {
      case "list":
        return legacyOk(api.list());
      case "status":
        return legacyOk(api.status(argName(args, cmd)));
      case "start":
        await api.start(argName(args, cmd));
        return legacyOk(null);
      case "stop":
        await api.stop(argName(args, cmd));
        return legacyOk(null);
      case "restart":
        await api.restart(argName(args, cmd));
        return legacyOk(null);
      case "monitor":
        await api.monitor(argName(args, cmd));
        return legacyOk(null);
      case "forget":
        api.forget(argName(args, cmd));
        return legacyOk(null);
      case "kill":
        api.kill(argName(args, cmd), args[1] ?? "SIGTERM");
        return legacyOk(null);
      case "shutdown":
        api.shutdown();
        return legacyOk(null);
      case "reboot":
        api.reboot();
        return legacyOk(null);
      case "log": {
        // The lines are read from the ring as the client takes them (server.ts), never copied whole.
        const snapshot = args[0] === "snapshot";
        const name = snapshot ? args[1] : args[0];
        return {
          kind: "stream",
          text: "",
          follow: { name, id: null, history: true, live: !snapshot },
          refused: legacyErr(TOO_MANY_FOLLOWERS).text,
        };
      }
      case "":
        return legacyErr("empty command");
      default:
        return legacyErr(`unknown command '${cmd}'`);
    }
  } catch (e) {
    return legacyErr((e as Error).message);
  }
}

interface RpcRequest {
  jsonrpc: "2.0";
  id?: string | number | null;
  method: string;
  params?: unknown;
}

const rpcResult = (id: RpcRequest["id"], result: unknown) =>
  JSON.stringify({ jsonrpc: "2.0", id: id ?? null, result });
const rpcError = (id: RpcRequest["id"] | undefined, code: number, message: string) =>
  JSON.stringify({ jsonrpc: "2.0", id: id ?? null, error: { code, message } });

/** Reads a parameter by position or by name. */
function param(params: unknown, index: number, name: string): unknown {
  if (Array.isArray(params)) return params[index];
  if (params && typeof params === "object") return (params as Record<string, unknown>)[name];
  return undefined;
}

function str(params: unknown, index: number, name: string, optional = false): string | undefined {
  const v = param(params, index, name);
  if (v === undefined || v === null) {
    if (optional) return undefined;
    throw new ControlError(RPC.INVALID_PARAMS, `missing parameter "${name}"`);
  }
  if (typeof v !== "string")
    throw new ControlError(RPC.INVALID_PARAMS, `parameter "${name}" must be a string`);
  return v;
}

let subscriptionIds = 0;

/** Handles one JSON-RPC line (a request, a notification or a batch). Returns null for notifications only. */
export async function handleJsonRpc(
  api: ControlApi,
  line: string,
  discover: () => unknown,
): Promise<Reply | null> {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return { kind: "write", text: `${rpcError(null, RPC.PARSE, "Parse error")}\n`, close: false };
  }
  if (Array.isArray(msg)) {
    if (msg.length === 0)
      return {
        kind: "write",
        text: `${rpcError(null, RPC.INVALID_REQUEST, "empty batch")}\n`,
        close: false,
      };
    const parts: string[] = [];
    let size = 0;
    for (const m of msg.slice(0, 100)) {
      if (size > MAX_BATCH_REPLY) {
        const id = (m as RpcRequest | null)?.id;
        const why = `batch answers exceed ${MAX_BATCH_REPLY} bytes: request not run`;
        parts.push(rpcError(id, RPC.INTERNAL, why));
        continue;
      }
      const r = await one(api, m, discover);
      if (r && r.kind === "write") {
        parts.push(r.text.trim());
        size += r.text.length;
      }
    }
    return parts.length ? { kind: "write", text: `[${parts.join(",")}]\n`, close: false } : null;
  }
  return one(api, msg, discover);
}

async function one(api: ControlApi, msg: unknown, discover: () => unknown): Promise<Reply | null> {
  const req = msg as RpcRequest;
  if (!req || typeof req !== "object" || req.jsonrpc !== "2.0" || typeof req.method !== "string") {
    return {
      kind: "write",
      text: `${rpcError((req as RpcRequest)?.id, RPC.INVALID_REQUEST, "Invalid Request")}\n`,
      close: false,
    };
  }
  const isNotification = !("id" in req);
  const { id, method, params } = req;
  const ok = (result: unknown): Reply | null =>
    isNotification ? null : { kind: "write", text: `${rpcResult(id, result)}\n`, close: false };
  try {
    switch (method) {
      case "rpc.discover":
        return ok(discover());
      case "service_list":
        return ok(api.list());
      case "service_status":
        return ok(api.status(str(params, 0, "name") as string));
      case "service_start":
        await api.start(str(params, 0, "name") as string);
        return ok(null);
      case "service_stop":
        await api.stop(str(params, 0, "name") as string);
        return ok(null);
      case "service_restart":
        await api.restart(str(params, 0, "name") as string);
        return ok(null);
      case "service_monitor":
        await api.monitor(str(params, 0, "name") as string);
        return ok(null);
      case "service_forget":
        api.forget(str(params, 0, "name") as string);
        return ok(null);
      case "service_kill":
        api.kill(str(params, 0, "name") as string, str(params, 1, "signal") as string);
        return ok(null);
      case "system_shutdown":
        api.shutdown();
        return ok(null);
      case "system_reboot":
        api.reboot();
        return ok(null);
      case "service_create": {
        const content = param(params, 1, "content");
        if (!content || typeof content !== "object" || Array.isArray(content)) {
          throw new ControlError(RPC.INVALID_PARAMS, 'parameter "content" must be an object');
        }
        return ok(api.create(str(params, 0, "name") as string, content as ServiceSpecInput));
      }
      case "service_delete":
        return ok(api.remove(str(params, 0, "name") as string));
      case "service_get":
        return ok(api.get(str(params, 0, "name") as string));
      case "service_stats":
        return ok(api.stats(str(params, 0, "name") as string));
      case "stream_currentLogs":
        return ok(boundedLogs(api.logs(str(params, 0, "name", true))));
      case "stream_subscribeLogs": {
        const name = str(params, 0, "name", true);
        const sid = ++subscriptionIds;
        return {
          kind: "stream",
          text: `${rpcResult(id, sid)}\n`,
          follow: { name, id: sid, history: false, live: true },
          refused: `${rpcError(id, RPC.INTERNAL, TOO_MANY_FOLLOWERS)}\n`,
        };
      }
      default:
        if (method.startsWith("mycelium_") && api.mycelium)
          return ok(await api.mycelium(method, params));
        if (method.startsWith("update_") && api.update) return ok(await api.update(method, params));
        throw new ControlError(RPC.METHOD_NOT_FOUND, `Method not found: ${method}`);
    }
  } catch (e) {
    if (isNotification) return null;
    const code = e instanceof ControlError ? e.rpcCode : RPC.INTERNAL;
    return { kind: "write", text: `${rpcError(id, code, (e as Error).message)}\n`, close: false };
  }
}

/** A subscription notification line for a log line. */
export function logNotification(subscription: number, line: string): string {
  return `${JSON.stringify({ jsonrpc: "2.0", method: "stream_subscribeLogs", params: { subscription, result: line } })}\n`;
}
