/**
 * The debug web terminal: a shell on a PTY (Bun.spawn's `terminal` option)
 * bridged to a WebSocket. Off unless vm.toml says `[ui] terminal = true`;
 * the app only upgrades admins from allowed addresses with a valid CSRF
 * token and same-origin Origin. node-pty is not used: it does not load in a
 * `bun build --compile` binary (bun issue 25822), and Bun's own PTY needs
 * no native addon.
 *
 * Frames from the browser are JSON text: {"t":"i","d":"ls\r"} (input) or
 * {"t":"r","c":120,"r":40} (resize). Frames to the browser are the PTY's
 * bytes, as binary messages. Every open and close is logged with the
 * client address; what is typed is never logged.
 */
import type { ServerWebSocket, Subprocess } from "bun";
import { log } from "../../lib/log.ts";
import { spawnOwned } from "../supervisor/process.ts";

/** Data attached to a terminal WebSocket at upgrade time. */
export interface TerminalData {
  kind: "terminal";
  ip: string;
  cols: number;
  rows: number;
  proc?: Subprocess;
  opened?: number;
}

/** Terminal limits and the shell to run. */
export interface TerminalOptions {
  maxSessions?: number;
  shell?: string[];
  /** Largest input frame accepted (bytes). */
  maxFrame?: number;
}

/** Pure: a browser frame → input text, a resize, or an error. */
export function parseFrame(
  text: string,
): { input: string } | { cols: number; rows: number } | { error: string } {
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { error: "frame is not JSON" };
  }
  if (!m || typeof m !== "object") return { error: "frame is not an object" };
  const f = m as Record<string, unknown>;
  if (f.t === "i" && typeof f.d === "string") return { input: f.d };
  if (f.t === "r") {
    const cols = Number(f.c);
    const rows = Number(f.r);
    if (Number.isInteger(cols) && Number.isInteger(rows) && cols >= 2 && rows >= 2)
      return { cols: Math.min(cols, 1000), rows: Math.min(rows, 500) };
    return { error: "resize needs integer c and r ≥ 2" };
  }
  return { error: 'unknown frame (expected t = "i" or "r")' };
}

/** Creates the terminal manager: the WebSocket handler and the session counter. */
export function createTerminals(o: TerminalOptions = {}) {
  const max = o.maxSessions ?? 4;
  const shell = o.shell ?? ["/bin/sh", "-l"];
  const maxFrame = o.maxFrame ?? 64 * 1024;
  const open = new Set<ServerWebSocket<TerminalData>>();
  const close = (ws: ServerWebSocket<TerminalData>, why: string) => {
    if (!open.delete(ws)) return;
    const p = ws.data.proc;
    if (p && p.exitCode === null) {
      try {
        p.kill("SIGHUP");
      } catch {}
    }
    const secs = ((Date.now() - (ws.data.opened ?? Date.now())) / 1000).toFixed(1);
    log.info("terminal", `closed for ${ws.data.ip} after ${secs} s (${why})`);
  };
  return {
    /** Whether another session may open now. */
    canOpen: () => open.size < max,
    get count() {
      return open.size;
    },
    max,
    websocket: {
      maxPayloadLength: maxFrame,
      idleTimeout: 960,
      open(ws: ServerWebSocket<TerminalData>) {
        if (open.size >= max) {
          ws.close(1013, `at most ${max} terminal sessions`);
          return;
        }
        open.add(ws);
        ws.data.opened = Date.now();
        log.info("terminal", `opened for ${ws.data.ip} (${open.size}/${max} sessions)`);
        try {
          ws.data.proc = spawnOwned(shell, {
            cwd: "/",
            env: {
              TERM: "xterm-256color",
              HOME: "/root",
              PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin",
            },
            terminal: {
              cols: ws.data.cols,
              rows: ws.data.rows,
              data: (_t, bytes) => {
                // A client that stops reading is dropped rather than buffered without bound.
                if (ws.getBufferedAmount() > 4 * 1024 * 1024) ws.close(1008, "client too slow");
                else ws.sendBinary(bytes);
              },
            },
          });
          ws.data.proc.exited.then((code) => {
            if (open.has(ws)) ws.close(1000, `shell exited (${code})`);
          });
        } catch (e) {
          ws.close(1011, `cannot start ${shell[0]}: ${(e as Error).message}`);
          close(ws, "spawn failed");
        }
      },
      message(ws: ServerWebSocket<TerminalData>, msg: string | Buffer) {
        const term = ws.data.proc?.terminal;
        if (!term) return;
        const f = parseFrame(typeof msg === "string" ? msg : msg.toString("utf8"));
        if ("input" in f) term.write(f.input);
        else if ("cols" in f) term.resize(f.cols, f.rows);
        else ws.send(JSON.stringify({ error: f.error }));
      },
      close(ws: ServerWebSocket<TerminalData>, code: number) {
        close(ws, `code ${code}`);
      },
    },
  };
}

/** A terminal manager. */
export type Terminals = ReturnType<typeof createTerminals>;
