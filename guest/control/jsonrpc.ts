/**
 * zinit's JSON-RPC 2.0 protocol, pure: one line (a request, a notification
 * or a batch) in, a reply out. This file is the envelope (parse, batch,
 * ids, error objects); what each method does is the table in methods.ts.
 */
import { isHeroError } from "../../lib/errors.ts";
import { callUnlisted, LogSubscription, METHODS, openrpcDocument } from "./methods.ts";
import {
  type ControlApi,
  MAX_BATCH_REPLY,
  type Reply,
  RPC,
  TOO_MANY_FOLLOWERS,
} from "./protocol.ts";

interface RpcRequest {
  jsonrpc: "2.0";
  id?: string | number | null;
  method: string;
  params?: unknown;
}

/** Requests of a batch that are run; the rest get no answer. */
const MAX_BATCH = 100;

const rpcResult = (id: RpcRequest["id"], result: unknown) =>
  JSON.stringify({ jsonrpc: "2.0", id: id ?? null, result });
const rpcError = (id: RpcRequest["id"] | undefined, code: number, message: string) =>
  JSON.stringify({ jsonrpc: "2.0", id: id ?? null, error: { code, message } });
const lineReply = (text: string): Reply => ({ kind: "write", text: `${text}\n`, close: false });

let subscriptionIds = 0;

/**
 * Handles one JSON-RPC line (a request, a notification or a batch). Returns
 * null for notifications only. `discover`: rpc.discover's answer (tests may
 * pass their own).
 */
export async function handleJsonRpc(
  api: ControlApi,
  text: string,
  discover: () => unknown = openrpcDocument,
): Promise<Reply | null> {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return lineReply(rpcError(null, RPC.PARSE, "Parse error"));
  }
  if (!Array.isArray(msg)) return one(api, msg, discover);
  if (msg.length === 0) return lineReply(rpcError(null, RPC.INVALID_REQUEST, "empty batch"));
  const parts: string[] = [];
  let size = 0;
  for (const m of msg.slice(0, MAX_BATCH)) {
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

/** One request of a line or a batch. */
async function one(api: ControlApi, msg: unknown, discover: () => unknown): Promise<Reply | null> {
  const req = msg as RpcRequest;
  if (!req || typeof req !== "object" || req.jsonrpc !== "2.0" || typeof req.method !== "string")
    return lineReply(rpcError((req as RpcRequest)?.id, RPC.INVALID_REQUEST, "Invalid Request"));
  const isNotification = !("id" in req);
  const { id, method, params } = req;
  try {
    const out = await run(api, method, params, discover);
    // A subscription is answered even when sent as a notification (its id is then null).
    if (out instanceof LogSubscription) return subscribe(id, out.name);
    return isNotification ? null : lineReply(rpcResult(id, out));
  } catch (e) {
    if (isNotification) return null;
    const code = isHeroError(e, "control") ? (e.detail.rpcCode ?? RPC.INTERNAL) : RPC.INTERNAL;
    return lineReply(rpcError(id, code, (e as Error).message));
  }
}

/** rpc.discover (the protocol's own method), else the table's method, else not found. */
function run(api: ControlApi, method: string, params: unknown, discover: () => unknown): unknown {
  if (method === "rpc.discover") return discover();
  const m = METHODS.get(method);
  return m ? m.call(api, params, method) : callUnlisted(api, method, params);
}

/** The subscription's id now; the server then streams the lines as notifications. */
function subscribe(id: RpcRequest["id"], name: string | undefined): Reply {
  const sid = ++subscriptionIds;
  return {
    kind: "stream",
    text: `${rpcResult(id, sid)}\n`,
    follow: { name, id: sid, history: false, live: true },
    refused: `${rpcError(id, RPC.INTERNAL, TOO_MANY_FOLLOWERS)}\n`,
  };
}

/** A subscription notification line for a log line. */
export function logNotification(subscription: number, line: string): string {
  return `${JSON.stringify({ jsonrpc: "2.0", method: "stream_subscribeLogs", params: { subscription, result: line } })}\n`;
}
