/**
 * The control socket (/var/run/zinit.sock and /tmp/zinit.sock): moves bytes
 * between clients and the pure protocol handlers. Never trusts a client:
 * a line longer than MAX_REQUEST gets an error and the connection closes; a
 * client that does not read its log stream is dropped once MAX_PENDING bytes
 * wait for it, so no client can block or bloat PID 1.
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Socket } from "bun";
import { describeError, log } from "../log.ts";
import {
  type ControlApi,
  handleJsonRpc,
  handleLegacy,
  logNotification,
  type Reply,
} from "./protocol.ts";

/** Longest request line accepted. */
export const MAX_REQUEST = 1024 * 1024;
/** Bytes queued for a slow reader before it is dropped. */
export const MAX_PENDING = 4 * 1024 * 1024;

interface Conn {
  buf: string;
  pending: Uint8Array[];
  pendingBytes: number;
  queue: Promise<void>;
  unsub: (() => void)[];
  closed: boolean;
}

const enc = new TextEncoder();

function send(s: Socket<Conn>, text: string): void {
  const c = s.data;
  if (c.closed) return;
  const bytes = enc.encode(text);
  if (c.pending.length === 0) {
    const n = s.write(bytes);
    if (n === bytes.length) return;
    c.pending.push(bytes.subarray(Math.max(n, 0)));
    c.pendingBytes += bytes.length - Math.max(n, 0);
  } else {
    c.pending.push(bytes);
    c.pendingBytes += bytes.length;
  }
  if (c.pendingBytes > MAX_PENDING) {
    c.closed = true;
    s.end();
  }
}

function flush(s: Socket<Conn>): void {
  const c = s.data;
  while (c.pending.length) {
    const head = c.pending[0] as Uint8Array;
    const n = s.write(head);
    if (n < head.length) {
      c.pending[0] = head.subarray(Math.max(n, 0));
      c.pendingBytes -= Math.max(n, 0);
      return;
    }
    c.pending.shift();
    c.pendingBytes -= head.length;
  }
}

function perform(s: Socket<Conn>, api: ControlApi, reply: Reply | null): void {
  if (!reply) return;
  send(s, reply.text);
  if (reply.kind === "write") {
    if (reply.close) {
      s.data.closed = true;
      s.end();
    }
    return;
  }
  const { name, id, rpc } = reply.subscribe;
  const prefix = name;
  s.data.unsub.push(
    api.subscribe(prefix, (line) =>
      send(s, rpc && id !== null ? logNotification(id, line) : `${line}\n`),
    ),
  );
}

/** Starts listening on every path; returns a function that stops all of them. */
export function startControlServer(
  api: ControlApi,
  paths: readonly string[],
  discover: () => unknown,
): () => void {
  const stops: (() => void)[] = [];
  for (const path of paths) {
    try {
      if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true });
      if (existsSync(path)) unlinkSync(path);
      const server = Bun.listen<Conn>({
        unix: path,
        socket: {
          open(s) {
            s.data = {
              buf: "",
              pending: [],
              pendingBytes: 0,
              queue: Promise.resolve(),
              unsub: [],
              closed: false,
            };
          },
          data(s, chunk) {
            const c = s.data;
            if (c.closed) return;
            c.buf += chunk.toString();
            let nl = c.buf.indexOf("\n");
            while (nl >= 0) {
              const line = c.buf.slice(0, nl).replace(/\r$/, "");
              c.buf = c.buf.slice(nl + 1);
              if (line.trim()) {
                c.queue = c.queue.then(async () => {
                  if (c.closed) return;
                  try {
                    const first = line.trimStart()[0];
                    const reply =
                      first === "{" || first === "["
                        ? await handleJsonRpc(api, line, discover)
                        : await handleLegacy(api, line);
                    perform(s, api, reply);
                  } catch (e) {
                    log.error("control", `request failed: ${describeError(e)}`);
                  }
                });
              }
              nl = c.buf.indexOf("\n");
            }
            if (c.buf.length > MAX_REQUEST) {
              send(
                s,
                `${JSON.stringify({ state: "error", body: `request longer than ${MAX_REQUEST} bytes` })}\n`,
              );
              c.closed = true;
              s.end();
            }
          },
          drain(s) {
            flush(s);
          },
          close(s) {
            s.data.closed = true;
            for (const u of s.data.unsub.splice(0)) u();
          },
          error(s, err) {
            s.data.closed = true;
            log.warn("control", `client error: ${err.message}`);
          },
        },
      });
      chmodSync(path, 0o600);
      stops.push(() => server.stop(true));
      log.info("control", `listening on ${path}`);
    } catch (e) {
      log.error("control", `cannot listen on ${path}: ${(e as Error).message}`);
    }
  }
  return () => {
    for (const s of stops) s();
  };
}
