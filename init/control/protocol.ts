/**
 * The control protocols, pure: one request line in, replies out. Both of
 * zinit's protocols share a socket, told apart by the first byte of a line:
 * `{` (or `[`) is JSON-RPC 2.0 (zinit ≥ 0.2.15), anything else is the legacy
 * line protocol (`status redis\n` → `{"state":"ok","body":…}`, then close).
 * The handlers call a {@link ControlApi}; the socket server (server.ts) only
 * moves bytes.
 */
import type { ServiceSpecInput } from "../../lib/service-spec.ts";

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
  logs(name?: string): string[];
  subscribe(name: string | undefined, fn: (line: string) => void): () => void;
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

/** What the server must do with a connection after a reply. */
export type Reply =
  | { kind: "write"; text: string; close: boolean }
  | {
      kind: "stream";
      text: string;
      subscribe: { name: string | undefined; id: number | null; rpc: boolean };
    };

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
        const snapshot = args[0] === "snapshot";
        const name = snapshot ? args[1] : args[0];
        const text = api
          .logs(name)
          .map((l) => `${l}\n`)
          .join("");
        if (snapshot) return { kind: "write", text, close: true };
        return { kind: "stream", text, subscribe: { name, id: null, rpc: false } };
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
    for (const m of msg.slice(0, 100)) {
      const r = await one(api, m, discover);
      if (r && r.kind === "write") parts.push(r.text.trim());
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
        return ok(api.logs(str(params, 0, "name", true)));
      case "stream_subscribeLogs": {
        const sid = ++subscriptionIds;
        return {
          kind: "stream",
          text: `${rpcResult(id, sid)}\n`,
          subscribe: { name: str(params, 0, "name", true), id: sid, rpc: true },
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
