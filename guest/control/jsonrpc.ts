/**
 * zinit's JSON-RPC 2.0 protocol, pure: one message (a request, a
 * notification or a batch) in, a reply out, as zinit's server (jsonrpsee
 * over reth-ipc) answers: its error texts ("Parse error", "Invalid
 * request", "Method not found"), subscriptions (the id as the result, then
 * notifications; stream_unsubscribeLogs ends one). This file is the
 * envelope (parse, batch, ids, error objects: errors.ts); what each method
 * does is the table in methods.ts.
 */
import { rpcErrorObject } from "./errors.ts";
import {
  callUnlisted,
  LogSubscription,
  LogUnsubscription,
  METHODS,
  openrpcDocument,
} from "./methods.ts";
import {
  type ControlApi,
  controlError,
  MAX_BATCH_REPLY,
  type Reply,
  RPC,
  TOO_MANY_FOLLOWERS,
} from "./protocol.ts";

type Id = string | number | null;

interface RpcRequest {
  jsonrpc: "2.0";
  id?: Id;
  method: string;
  params?: unknown;
}

/** What a connection offers the requests it carries (its subscriptions). */
export interface RpcSession {
  /** Ends this connection's subscription `id`; false if it has none such. */
  unsubscribe(id: number): boolean;
}

/** Requests of a batch that are run; the rest get no answer. */
const MAX_BATCH = 100;

const rpcResult = (id: Id | undefined, result: unknown) =>
  JSON.stringify({ jsonrpc: "2.0", id: id ?? null, result });
const rpcError = (id: Id | undefined, error: { code: number; message: string; data?: unknown }) =>
  JSON.stringify({ jsonrpc: "2.0", id: id ?? null, error });
const lineReply = (text: string): Reply => ({ kind: "write", text: `${text}\n`, close: false });

let subscriptionIds = 0;

/** A session without subscriptions (a caller that holds no connection). */
const NO_SESSION: RpcSession = { unsubscribe: () => false };

/**
 * Handles one JSON-RPC message (a request, a notification or a batch).
 * Returns null for notifications only. `discover`: rpc.discover's document
 * (tests may pass their own); `session`: the connection's subscriptions.
 */
export async function handleJsonRpc(
  api: ControlApi,
  text: string,
  discover: () => unknown = openrpcDocument,
  session: RpcSession = NO_SESSION,
): Promise<Reply | null> {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch {
    return lineReply(rpcError(null, { code: RPC.PARSE, message: "Parse error" }));
  }
  if (!Array.isArray(msg)) return one(api, msg, discover, session);
  if (msg.length === 0) return lineReply(rpcError(null, invalidRequest));
  const parts: string[] = [];
  let size = 0;
  for (const m of msg.slice(0, MAX_BATCH)) {
    if (size > MAX_BATCH_REPLY) {
      const why = `batch answers exceed ${MAX_BATCH_REPLY} bytes: request not run`;
      parts.push(rpcError(idOf(m), { code: RPC.INTERNAL, message: why }));
      continue;
    }
    const r = await one(api, m, discover, session);
    if (r && r.kind === "write") {
      parts.push(r.text.trim());
      size += r.text.length;
    }
  }
  return parts.length ? { kind: "write", text: `[${parts.join(",")}]\n`, close: false } : null;
}

const invalidRequest = { code: RPC.INVALID_REQUEST, message: "Invalid request" };

/** Pure: a message's id when it is a valid one (number, string, null), else null. */
function idOf(m: unknown): Id {
  const id = (m as { id?: unknown } | null)?.id;
  return typeof id === "number" || typeof id === "string" ? id : null;
}

/** One request of a message or a batch. */
async function one(
  api: ControlApi,
  msg: unknown,
  discover: () => unknown,
  session: RpcSession,
): Promise<Reply | null> {
  const req = msg as RpcRequest;
  const idOk = !req || typeof req !== "object" || !("id" in req) || idOf(req) === req.id;
  if (
    !req ||
    typeof req !== "object" ||
    req.jsonrpc !== "2.0" ||
    typeof req.method !== "string" ||
    !idOk
  )
    return lineReply(rpcError(idOf(req), invalidRequest));
  const isNotification = !("id" in req);
  const { id, method, params } = req;
  try {
    const out = await run(api, method, params, discover);
    // A subscription is answered even when sent as a notification (its id is then null).
    if (out instanceof LogSubscription) return subscribe(id, out.name);
    if (out instanceof LogUnsubscription) {
      const sid = Number(out.id);
      const found = Number.isSafeInteger(sid) && session.unsubscribe(sid);
      return isNotification ? null : lineReply(rpcResult(id, found));
    }
    return isNotification ? null : lineReply(rpcResult(id, out));
  } catch (e) {
    if (isNotification) return null;
    return lineReply(rpcError(id, rpcErrorObject(e, METHODS.get(method)?.action)));
  }
}

/** rpc.discover (the document's JSON text, as zinit answers), else the table's method, else not found. */
function run(api: ControlApi, method: string, params: unknown, discover: () => unknown): unknown {
  if (method === "rpc.discover") return JSON.stringify(discover());
  const m = METHODS.get(method);
  return m ? m.call(api, params, method) : callUnlisted(api, method, params);
}

/** The subscription's id now; the server then streams the lines as notifications. */
function subscribe(id: Id | undefined, name: string | undefined): Reply {
  const sid = ++subscriptionIds;
  const refusal = controlError(RPC.INTERNAL, TOO_MANY_FOLLOWERS);
  return {
    kind: "stream",
    text: `${rpcResult(id, sid)}\n`,
    follow: { name, id: sid, history: false, live: true },
    refused: `${rpcError(id, rpcErrorObject(refusal, undefined))}\n`,
  };
}

/** A subscription notification line for a log line. */
export function logNotification(subscription: number, line: string): string {
  return `${JSON.stringify({ jsonrpc: "2.0", method: "stream_subscribeLogs", params: { subscription, result: line } })}\n`;
}
