/**
 * Clients of the control socket, shared by the CLI (and by tests): a
 * JSON-RPC connection (`connect`) and the legacy protocol's one command per
 * connection (`legacyCommand`, `legacyLog`). Replies are framed as zinit's
 * client frames them (framing.ts: a JSON reply ends where its brackets
 * balance, a newline is not needed). A daemon that answers JSON-RPC with a
 * legacy reply (zinit ≤ 0.2.14) rejects the call with "control.legacy": the
 * caller then speaks the legacy protocol. A socket that cannot be reached
 * is zinit's message ("control.no-daemon"); the daemon's error replies
 * become the control error a handler threw there (same code, message, data).
 */

import { existsSync } from "node:fs";
import type { Socket } from "bun";
import { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { rustDebug } from "./errors.ts";
import { newFrameState, takeMessages } from "./framing.ts";
import { controlError } from "./protocol.ts";

/** The socket to use: -s, $ZINIT_SOCKET, then the first existing default. */
export function socketPath(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.ZINIT_SOCKET) return process.env.ZINIT_SOCKET;
  return LAYOUT.zinitSockets.find((p) => existsSync(p)) ?? LAYOUT.zinitSockets[0];
}

/** Rust's text of the errors connect(2) gives most ("No such file or directory (os error 2)"). */
const OS_ERRORS: Record<string, [string, number]> = {
  ENOENT: ["No such file or directory", 2],
  EACCES: ["Permission denied", 13],
  ECONNREFUSED: ["Connection refused", 111],
  ENOTSOCK: ["Socket operation on non-socket", 88],
  ENOTDIR: ["Not a directory", 20],
};

/** Pure: zinit's message when its socket cannot be reached. */
export function noDaemonText(path: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const os = err?.code ? OS_ERRORS[err.code] : undefined;
  const why = os ? `${os[0]} (os error ${os[1]})` : (err?.message ?? String(e));
  return `failed to connect to '${rustDebug(path)}'. is zinit listening on that socket?: ${why}`;
}

async function open<T>(path: string, handlers: Bun.SocketHandler<T>): Promise<Socket<T>> {
  try {
    return await Bun.connect({ unix: path, socket: handlers });
  } catch (e) {
    throw new HeroError("control.no-daemon", noDaemonText(path, e));
  }
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** One reply or notification of the daemon. */
interface RpcMessage {
  id?: number | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  method?: string;
  params?: unknown;
  /** A legacy reply: the daemon does not speak JSON-RPC. */
  state?: string;
  body?: unknown;
}

/** The control error of an error reply (code, message and data as the daemon sent them; the service zinit's data names). */
function replyError(error: NonNullable<RpcMessage["error"]>): HeroError {
  const e = controlError(error.code, error.message);
  if (error.data !== undefined) e.detail.rpcData = error.data;
  const service = (error.data as { service?: unknown } | null)?.service;
  if (typeof service === "string") e.detail.service = service;
  return e;
}

/** Opens a JSON-RPC connection; `onNotify` receives subscription notifications. */
export async function connect(path: string, onNotify?: (params: unknown) => void) {
  const pending = new Map<number, Pending>();
  const frame = newFrameState();
  let buf = "";
  let nextId = 1;
  let closedErr: Error | null = null;
  let ended: () => void = () => {};
  const closed = new Promise<void>((r) => {
    ended = r;
  });
  const failAll = (e: Error) => {
    closedErr = e;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  const onMessage = (text: string) => {
    let msg: RpcMessage;
    try {
      msg = JSON.parse(text);
    } catch {
      return;
    }
    if (msg.state !== undefined && msg.id === undefined)
      return failAll(new HeroError("control.legacy", String(msg.body)));
    if (msg.method && onNotify) return onNotify(msg.params);
    // An error for no request: the daemon refuses the connection (too many open).
    if (msg.error && msg.id == null) return failAll(replyError(msg.error));
    const p = msg.id == null ? undefined : pending.get(msg.id);
    if (!p) return;
    pending.delete(msg.id as number);
    if (msg.error) p.reject(replyError(msg.error));
    else p.resolve(msg.result);
  };
  const take = (more: string) => {
    const r = takeMessages(buf + more, frame);
    buf = r.rest;
    for (const m of r.messages) onMessage(m);
  };
  const sock = await open<undefined>(path, {
    data: (_s, chunk) => take(chunk.toString()),
    close() {
      // zinit 0.2.14 ends its (legacy) reply with the connection, not a newline.
      take("\n");
      failAll(closedErr ?? new HeroError("control.no-daemon", "connection closed by the daemon"));
      ended();
    },
    error(_s, e) {
      closedErr = e;
    },
  });
  return {
    call(method: string, params: unknown = []): Promise<unknown> {
      if (closedErr) return Promise.reject(closedErr);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        sock.write(`${JSON.stringify({ jsonrpc: "2.0", id, method, params })}\n`);
      });
    },
    close() {
      sock.end();
    },
    /** Resolves when the connection has ended. */
    closed,
  };
}

/** Sends one legacy line; resolves with what the daemon wrote until it closed. */
function legacyExchange(path: string, line: string, onData?: (text: string) => void) {
  return new Promise<string>((resolve, reject) => {
    let got = "";
    open<undefined>(path, {
      open: (s) => {
        s.write(`${line}\n`);
      },
      data: (_s, chunk) => {
        const text = chunk.toString();
        if (onData) onData(text);
        else got += text;
      },
      close: () => resolve(got),
      error: (_s, e) => reject(e),
    }).catch(reject);
  });
}

/**
 * One legacy command (`status web`): its body, or its error text as a
 * HeroError "control.legacy-error" (zinit 0.2.14's client prints it as is).
 */
export async function legacyCommand(path: string, line: string): Promise<unknown> {
  const text = await legacyExchange(path, line);
  let reply: { state?: string; body?: unknown };
  try {
    reply = JSON.parse(text);
  } catch {
    throw new HeroError(
      "control.bad-reply",
      `not a zinit reply: ${JSON.stringify(text.slice(0, 200))}`,
    );
  }
  if (reply.state === "ok") return reply.body;
  throw new HeroError("control.legacy-error", String(reply.body));
}

/** `log` / `log snapshot` on the legacy protocol: each line as it comes, until the daemon closes. */
export async function legacyLog(path: string, follow: boolean, onLine: (line: string) => void) {
  let rest = "";
  await legacyExchange(path, follow ? "log" : "log snapshot", (text) => {
    const parts = (rest + text).split("\n");
    rest = parts.pop() ?? "";
    for (const l of parts) onLine(l);
  });
  if (rest) onLine(rest);
}
