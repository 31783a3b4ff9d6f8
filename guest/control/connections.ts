/**
 * The control sockets' connections and every byte PID 1 holds for them:
 * one state per client (requests read, answers not yet written, log
 * followers) and the totals over all clients, each bounded (server.ts says
 * how). Writing goes through here, so no answer escapes the bounds.
 */
import type { Socket } from "bun";
import { log } from "../../lib/log.ts";
import type { LogFollower } from "../supervisor/logs.ts";
import {
  type FrameState,
  MAX_REQUEST,
  newFrameState,
  TOO_LONG_LINE,
  takeMessages,
} from "./framing.ts";

/** Bytes of answers waiting for one client before it is dropped. */
const MAX_PENDING = 4 * 1024 * 1024;
/** Bytes of answers waiting for all clients together. */
const MAX_PENDING_TOTAL = 16 * 1024 * 1024;
/** Characters of unhandled requests of all clients together. */
const MAX_INPUT_TOTAL = 16 * 1024 * 1024;
/** Open connections over all control sockets. */
export const MAX_CONNECTIONS = 512;
/** Seconds a closed connection may wait for its peer to read the last answer and close. */
const LINGER_S = 5;
/** Closed connections that may wait so at once (not counted as open); beyond, the oldest is cut off. */
const MAX_LINGERING = 64;

/** What the control sockets refused or dropped since PID 1 started (logged, at most every 10 s). */
export const controlCounters = {
  /** Connections refused: MAX_CONNECTIONS were open. */
  refused: 0,
  /** `log` / stream_subscribeLogs refused: MAX_FOLLOWERS were following. */
  followersRefused: 0,
  /** Clients dropped: they did not read their answers, or held the most when a total was reached. */
  dropped: 0,
  /** Log lines followers missed: the ring evicted them before the client read them. */
  linesDropped: 0,
};

/** A log stream of a connection: a position in the ring. */
export interface Follower {
  reader: LogFollower;
  /** JSON-RPC subscription id; null: legacy plain lines. */
  id: number | null;
  live: boolean;
}

/** One client's state. */
export interface Conn {
  /** Start of a request not yet ended (framing.ts). */
  buf: string;
  /** Where the framing of `buf` stands. */
  frame: FrameState;
  /** Whole requests waiting to be handled, in order. */
  lines: string[];
  lineChars: number;
  busy: boolean;
  out: Uint8Array[];
  outBytes: number;
  followers: Follower[];
  unsub: (() => void) | null;
  /** Accepted and counted in the connection total. */
  counted: boolean;
  /** No more requests are handled; the socket is closed once `out` is written. */
  closing: boolean;
  closed: boolean;
  paused: boolean;
}

export type ControlSocket = Socket<Conn>;

const newConn = (counted: boolean): Conn => ({
  buf: "",
  frame: newFrameState(),
  lines: [],
  lineChars: 0,
  busy: false,
  out: [],
  outBytes: 0,
  followers: [],
  unsub: null,
  counted,
  closing: false,
  closed: false,
  paused: false,
});

const enc = new TextEncoder();

/** The connection-limit error: one line both protocols understand (legacy state/body, JSON-RPC error). */
export function refusalLine(open: number): string {
  const message = `too many connections: ${open} open (limit ${MAX_CONNECTIONS}); try again later`;
  return `${JSON.stringify({ state: "error", body: message, jsonrpc: "2.0", id: null, error: { code: -32603, message } })}\n`;
}

/** Every connection of every control socket, and the totals that bound them together. */
export class Connections {
  private readonly open = new Set<ControlSocket>();
  /** Connections done with (answered, refused), left open for their peer to read the last line. */
  private readonly lingering = new Set<ControlSocket>();
  /** Log followers over all connections. */
  followers = 0;
  private outTotal = 0;
  private inTotal = 0;
  private lastWarn = 0;
  private unwarned = 0;

  /** A new peer: counted, or (beyond MAX_CONNECTIONS) told so and closed. */
  accept(s: ControlSocket): void {
    if (this.open.size >= MAX_CONNECTIONS) {
      s.data = newConn(false);
      s.data.closing = true;
      controlCounters.refused++;
      this.warn(`connection refused: ${this.open.size} open (limit ${MAX_CONNECTIONS})`);
      s.write(refusalLine(this.open.size));
      this.linger(s);
      return;
    }
    s.data = newConn(true);
    this.open.add(s);
  }

  /** Logs a refusal or a drop, at most every 10 s (the counters say how many). */
  warn(text: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) {
      this.unwarned++;
      return;
    }
    const more = this.unwarned ? ` (and ${this.unwarned} more since the last report)` : "";
    this.lastWarn = now;
    this.unwarned = 0;
    const c = controlCounters;
    log.warn(
      "control",
      `${text}${more}; so far ${c.refused} connections and ${c.followersRefused} log followers refused, ${c.dropped} clients dropped, ${c.linesDropped} log lines dropped for slow followers`,
    );
  }

  /** Frees everything held for a connection; idempotent. */
  release(s: ControlSocket): void {
    const c = s.data;
    if (!c) return;
    c.closed = true;
    c.closing = true;
    this.outTotal -= c.outBytes;
    c.out = [];
    c.outBytes = 0;
    this.inTotal -= c.buf.length + c.lineChars;
    c.buf = "";
    c.lines = [];
    c.lineChars = 0;
    this.followers -= c.followers.length;
    c.followers = [];
    c.unsub?.();
    c.unsub = null;
    if (c.counted) this.open.delete(s);
    c.counted = false;
  }

  /** The peer closed (or was cut off). */
  closed(s: ControlSocket): void {
    this.lingering.delete(s);
    this.release(s);
  }

  /** Ends a connection at once, without reading or writing more. */
  drop(s: ControlSocket, why: string): void {
    if (s.data.closed) return;
    this.release(s);
    controlCounters.dropped++;
    this.warn(`client dropped: ${why}`);
    s.terminate();
  }

  /** Closes a connection once its answers are written (unix sockets deliver what was written). */
  finish(s: ControlSocket): void {
    const c = s.data;
    c.closing = true;
    if (c.closed || c.outBytes > 0) return;
    this.release(s);
    this.linger(s);
  }

  /**
   * Lets the peer read what was written, then EOF: shutdown(2) of our side
   * only (closing, even end(), can reset the connection before the peer
   * reads). The socket no longer counts as open; it is closed when the peer
   * closes, after LINGER_S, or when MAX_LINGERING newer ones wait.
   */
  private linger(s: ControlSocket): void {
    s.data.closing = true;
    this.lingering.add(s);
    s.shutdown();
    s.timeout(LINGER_S);
    if (this.lingering.size > MAX_LINGERING) {
      const oldest = this.lingering.values().next().value as ControlSocket;
      this.lingering.delete(oldest);
      oldest.terminate();
    }
  }

  /** The connection holding the most of `what`. */
  private largest(what: (c: Conn) => number): ControlSocket | undefined {
    let best: ControlSocket | undefined;
    for (const s of this.open) if (!best || what(s.data) > what(best.data)) best = s;
    return best;
  }

  private pauseReading(s: ControlSocket): void {
    if (!s.data.paused) {
      s.data.paused = true;
      s.pause();
    }
  }

  /** Reads again once the client has taken its answers and its requests were handled. */
  maybeResume(s: ControlSocket): void {
    const c = s.data;
    if (c.paused && !c.closed && c.outBytes === 0 && c.lineChars < MAX_REQUEST) {
      c.paused = false;
      s.resume();
    }
  }

  /**
   * Takes bytes the client sent: whole requests wait to be handled, within
   * the bounds. False when the connection is done with (a request too long,
   * or dropped to keep the total).
   */
  receive(s: ControlSocket, text: string): boolean {
    const c = s.data;
    const { messages: lines, rest } = takeMessages(c.buf + text, c.frame);
    let chars = 0;
    for (const line of lines) {
      c.lines.push(line);
      chars += line.length;
    }
    this.inTotal += rest.length - c.buf.length + chars;
    c.buf = rest;
    c.lineChars += chars;
    if (c.buf.length > MAX_REQUEST) {
      this.write(s, TOO_LONG_LINE);
      this.inTotal -= c.buf.length + c.lineChars;
      c.buf = "";
      c.lines = [];
      c.lineChars = 0;
      this.finish(s);
      return false;
    }
    if (c.lineChars >= MAX_REQUEST) this.pauseReading(s);
    while (this.inTotal > MAX_INPUT_TOTAL) {
      const v = this.largest((x) => x.buf.length + x.lineChars);
      if (!v) break;
      this.drop(
        v,
        `requests waiting from all clients reached ${MAX_INPUT_TOTAL} bytes; it sent the most`,
      );
      if (v === s) return false;
    }
    return true;
  }

  /** The client's next request line, no longer counted as waiting. */
  nextLine(s: ControlSocket): string {
    const c = s.data;
    const line = c.lines.shift() as string;
    c.lineChars -= line.length;
    this.inTotal -= line.length;
    return line;
  }

  /** Queues bytes the kernel did not take, within the bounds. */
  private queue(s: ControlSocket, bytes: Uint8Array): void {
    const c = s.data;
    if (c.outBytes + bytes.length > MAX_PENDING) {
      this.drop(s, `${c.outBytes + bytes.length} bytes of answers not read (limit ${MAX_PENDING})`);
      return;
    }
    c.out.push(bytes);
    c.outBytes += bytes.length;
    this.outTotal += bytes.length;
    // A client that does not read its answers sends no more requests for now.
    this.pauseReading(s);
    while (this.outTotal > MAX_PENDING_TOTAL) {
      const v = this.largest((x) => x.outBytes);
      if (!v) break;
      this.drop(
        v,
        `answers waiting for all clients reached ${MAX_PENDING_TOTAL} bytes; it held the most`,
      );
      if (v === s) break;
    }
  }

  /** Writes what the kernel takes now; the rest waits in `out`. */
  write(s: ControlSocket, text: string): void {
    const c = s.data;
    if (c.closed || !text) return;
    if (c.outBytes > 0) {
      this.queue(s, enc.encode(text));
      return;
    }
    // Strings go to the socket without a copy of their own; only what it did not take is encoded.
    const n = s.write(text);
    if (n < 0) {
      this.release(s);
      return;
    }
    if (n < Buffer.byteLength(text)) this.queue(s, enc.encode(text).slice(n));
  }

  /** Like write(), for bytes that will be reused (copied when they must wait). */
  writeBytes(s: ControlSocket, bytes: Uint8Array): void {
    const c = s.data;
    if (c.closed || bytes.length === 0) return;
    if (c.outBytes > 0) {
      this.queue(s, bytes.slice());
      return;
    }
    const n = s.write(bytes);
    if (n < 0) {
      this.release(s);
      return;
    }
    if (n < bytes.length) this.queue(s, bytes.slice(n));
  }

  /** Writes the waiting answers while the kernel takes them (the socket drained). */
  flush(s: ControlSocket): void {
    const c = s.data;
    while (c.out.length && !c.closed) {
      const head = c.out[0] as Uint8Array;
      const n = s.write(head);
      if (n < 0) {
        this.release(s);
        return;
      }
      if (n < head.length) {
        c.out[0] = head.subarray(n);
        c.outBytes -= n;
        this.outTotal -= n;
        return;
      }
      c.out.shift();
      c.outBytes -= head.length;
      this.outTotal -= head.length;
    }
  }
}
