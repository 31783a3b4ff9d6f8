/**
 * A JSON-RPC client for the control socket, shared by the CLI (and by tests).
 * Connection errors become one clear message: the daemon is not running
 * (a HeroError "control.no-daemon"); the daemon's error replies become the
 * control error a handler threw there (controlError, same code and RPC code).
 */

import { existsSync } from "node:fs";
import type { Socket } from "bun";
import { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { controlError } from "./protocol.ts";

/** The socket to use: -s, $ZINIT_SOCKET, then the first existing default. */
export function socketPath(explicit?: string): string {
  if (explicit) return explicit;
  if (process.env.ZINIT_SOCKET) return process.env.ZINIT_SOCKET;
  return LAYOUT.zinitSockets.find((p) => existsSync(p)) ?? LAYOUT.zinitSockets[0];
}

interface Pending {
  resolve(v: unknown): void;
  reject(e: Error): void;
}

/** Opens a connection; `onNotify` receives subscription notifications. */
export async function connect(path: string, onNotify?: (params: unknown) => void) {
  const pending = new Map<number, Pending>();
  let buf = "";
  let nextId = 1;
  let closedErr: Error | null = null;
  let sock: Socket<undefined>;
  try {
    sock = await Bun.connect({
      unix: path,
      socket: {
        data(_s, chunk) {
          buf += chunk.toString();
          let nl = buf.indexOf("\n");
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            nl = buf.indexOf("\n");
            let msg: {
              id?: number | null;
              result?: unknown;
              error?: { code: number; message: string };
              method?: string;
              params?: unknown;
            };
            try {
              msg = JSON.parse(line);
            } catch {
              continue;
            }
            if (msg.method && onNotify) {
              onNotify(msg.params);
              continue;
            }
            // An error for no request: the daemon refuses the connection (too many open).
            if (msg.error && msg.id == null) {
              closedErr = controlError(msg.error.code, msg.error.message);
              for (const p of pending.values()) p.reject(closedErr);
              pending.clear();
              continue;
            }
            const p = msg.id == null ? undefined : pending.get(msg.id);
            if (!p) continue;
            pending.delete(msg.id as number);
            if (msg.error) p.reject(controlError(msg.error.code, msg.error.message));
            else p.resolve(msg.result);
          }
        },
        close() {
          closedErr ??= new HeroError("control.no-daemon", "connection closed by the daemon");
          for (const p of pending.values()) p.reject(closedErr);
          pending.clear();
        },
        error(_s, e) {
          closedErr = e;
        },
      },
    });
  } catch (e) {
    throw new HeroError(
      "control.no-daemon",
      `cannot connect to ${path}: ${(e as Error).message} (is hero-init/zinit running?)`,
    );
  }
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
  };
}
