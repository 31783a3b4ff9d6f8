/**
 * The control socket (/var/run/zinit.sock and /tmp/zinit.sock): moves bytes
 * between clients and the pure protocol handlers. Never trusts a client;
 * every byte PID 1 keeps for one is bounded:
 * - connections: at most MAX_CONNECTIONS over all paths; the next peer gets
 *   one error line and is closed (and counted); at most MAX_FOLLOWERS of them
 *   follow logs, so followers alone cannot take every connection; a
 *   connection done with (answered, refused) waits LINGER_S at most for its
 *   peer to read the last line, MAX_LINGERING at once;
 * - requests: a line longer than MAX_REQUEST gets an error and the connection
 *   closes; while a client has answers it has not read (or MAX_REQUEST bytes
 *   of requests waiting), its socket is not read at all; partial requests of
 *   all clients together are bounded by MAX_INPUT_TOTAL (the client holding
 *   the most is dropped);
 * - answers: bytes the kernel did not take wait per client (at most
 *   MAX_PENDING, else the client is dropped) and over all clients (at most
 *   MAX_PENDING_TOTAL, else the client holding the most is dropped);
 * - log streams (`log`, stream_subscribeLogs) are never queued: a follower is
 *   a position in the ring (supervisor/logs.ts follow()), lines are read from
 *   the ring only when the client's socket takes them, and lines the ring
 *   evicted before a slow client got to them come as one
 *   `[-] zinit: N lines dropped` line (zinit's words for a lagging reader).
 */
import { chmodSync, existsSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import type { Socket } from "bun";
import { describeError, log } from "../../lib/log.ts";
import {
  droppedText,
  type FollowItem,
  follow,
  formatZinit,
  type LogFollower,
  type LogLine,
} from "../supervisor/logs.ts";
import {
  type ControlApi,
  handleJsonRpc,
  handleLegacy,
  type LogFollow,
  logNotification,
  MAX_FOLLOWERS,
  type Reply,
} from "./protocol.ts";

/** Longest request line accepted. */
export const MAX_REQUEST = 1024 * 1024;
/** Bytes of answers waiting for one client before it is dropped. */
export const MAX_PENDING = 4 * 1024 * 1024;
/** Bytes of answers waiting for all clients together. */
export const MAX_PENDING_TOTAL = 16 * 1024 * 1024;
/** Characters of unhandled requests of all clients together. */
export const MAX_INPUT_TOTAL = 16 * 1024 * 1024;
/** Open connections over all control sockets. */
export const MAX_CONNECTIONS = 512;
/** Seconds a closed connection may wait for its peer to read the last answer and close. */
const LINGER_S = 5;
/** Closed connections that may wait so at once (not counted as open); beyond, the oldest is cut off. */
const MAX_LINGERING = 64;
/** Lines and characters a follower reads from the ring per write. */
const FOLLOW_LINES = 128;
const FOLLOW_CHARS = 8 * 1024;

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

interface Follower {
  reader: LogFollower;
  /** JSON-RPC subscription id; null: legacy plain lines. */
  id: number | null;
  live: boolean;
}

interface Conn {
  /** Start of a request line not yet ended by a newline. */
  buf: string;
  /** Whole request lines waiting to be handled, in order. */
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

const enc = new TextEncoder();
/** Where followers' batches are encoded (one at a time: the server is single-threaded). */
const scratch = new Uint8Array(512 * 1024);
/** `[+] name: ` for each service and stream, so plain log lines need no string of their own. */
const prefixes = new Map<string, string>();

function prefixOf(l: LogLine): string {
  const key = `${l.stream === "stdout" ? "+" : "-"}${l.service}`;
  let p = prefixes.get(key);
  if (p === undefined) {
    p = `[${key[0]}] ${l.service}: `;
    if (prefixes.size < 10_000) prefixes.set(key, p);
  }
  return p;
}

const newConn = (counted: boolean): Conn => ({
  buf: "",
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

/** The connection-limit error: one line both protocols understand (legacy state/body, JSON-RPC error). */
export function refusalLine(open: number): string {
  const message = `too many connections: ${open} open (limit ${MAX_CONNECTIONS}); try again later`;
  return `${JSON.stringify({ state: "error", body: message, jsonrpc: "2.0", id: null, error: { code: -32603, message } })}\n`;
}

/** The shared state of every control socket: the connection and byte totals. */
function createHub(api: ControlApi, discover: () => unknown) {
  const conns = new Set<Socket<Conn>>();
  /** Log followers over all connections. */
  let followers = 0;
  /** Connections done with (answered, refused), left open for their peer to read the last line. */
  const lingering = new Set<Socket<Conn>>();
  let outTotal = 0;
  let inTotal = 0;
  let lastWarn = 0;
  let unwarned = 0;

  /** Logs a refusal or a drop, at most every 10 s (the counters say how many). */
  const warn = (text: string) => {
    const now = Date.now();
    if (now - lastWarn < 10_000) {
      unwarned++;
      return;
    }
    const more = unwarned ? ` (and ${unwarned} more since the last report)` : "";
    lastWarn = now;
    unwarned = 0;
    const c = controlCounters;
    log.warn(
      "control",
      `${text}${more}; so far ${c.refused} connections and ${c.followersRefused} log followers refused, ${c.dropped} clients dropped, ${c.linesDropped} log lines dropped for slow followers`,
    );
  };

  /** Frees everything held for a connection; idempotent. */
  const release = (s: Socket<Conn>) => {
    const c = s.data;
    if (!c) return;
    c.closed = true;
    c.closing = true;
    outTotal -= c.outBytes;
    c.out = [];
    c.outBytes = 0;
    inTotal -= c.buf.length + c.lineChars;
    c.buf = "";
    c.lines = [];
    c.lineChars = 0;
    followers -= c.followers.length;
    c.followers = [];
    c.unsub?.();
    c.unsub = null;
    if (c.counted) conns.delete(s);
    c.counted = false;
  };

  /** Ends a connection at once, without reading or writing more. */
  const drop = (s: Socket<Conn>, why: string) => {
    if (s.data.closed) return;
    release(s);
    controlCounters.dropped++;
    warn(`client dropped: ${why}`);
    s.terminate();
  };

  /** Closes a connection once its answers are written (unix sockets deliver what was written). */
  const finish = (s: Socket<Conn>) => {
    const c = s.data;
    c.closing = true;
    if (c.closed || c.outBytes > 0) return;
    release(s);
    linger(s);
  };

  /**
   * Lets the peer read what was written, then EOF: shutdown(2) of our side
   * only (closing, even end(), can reset the connection before the peer
   * reads). The socket no longer counts as open; it is closed when the peer
   * closes, after LINGER_S, or when MAX_LINGERING newer ones wait.
   */
  const linger = (s: Socket<Conn>) => {
    s.data.closing = true;
    lingering.add(s);
    s.shutdown();
    s.timeout(LINGER_S);
    if (lingering.size > MAX_LINGERING) {
      const oldest = lingering.values().next().value as Socket<Conn>;
      lingering.delete(oldest);
      oldest.terminate();
    }
  };

  /** The connection holding the most of `what`. */
  const largest = (what: (c: Conn) => number): Socket<Conn> | undefined => {
    let best: Socket<Conn> | undefined;
    for (const s of conns) if (!best || what(s.data) > what(best.data)) best = s;
    return best;
  };

  const pauseReading = (s: Socket<Conn>) => {
    if (!s.data.paused) {
      s.data.paused = true;
      s.pause();
    }
  };

  /** Reads again once the client has taken its answers and its requests were handled. */
  const maybeResume = (s: Socket<Conn>) => {
    const c = s.data;
    if (c.paused && !c.closed && c.outBytes === 0 && c.lineChars < MAX_REQUEST) {
      c.paused = false;
      s.resume();
    }
  };

  /** Queues bytes the kernel did not take, within the bounds. */
  const queue = (s: Socket<Conn>, bytes: Uint8Array) => {
    const c = s.data;
    if (c.outBytes + bytes.length > MAX_PENDING)
      return drop(
        s,
        `${c.outBytes + bytes.length} bytes of answers not read (limit ${MAX_PENDING})`,
      );
    c.out.push(bytes);
    c.outBytes += bytes.length;
    outTotal += bytes.length;
    // A client that does not read its answers sends no more requests for now.
    pauseReading(s);
    while (outTotal > MAX_PENDING_TOTAL) {
      const v = largest((x) => x.outBytes);
      if (!v) break;
      drop(
        v,
        `answers waiting for all clients reached ${MAX_PENDING_TOTAL} bytes; it held the most`,
      );
      if (v === s) break;
    }
  };

  /** Writes what the kernel takes now; the rest waits in `out`. */
  const write = (s: Socket<Conn>, text: string) => {
    const c = s.data;
    if (c.closed || !text) return;
    if (c.outBytes > 0) return queue(s, enc.encode(text));
    // Strings go to the socket without a copy of their own; only what it did not take is encoded.
    const n = s.write(text);
    if (n < 0) return release(s);
    if (n < Buffer.byteLength(text)) queue(s, enc.encode(text).slice(n));
  };

  /** Like write(), for bytes that will be reused (copied when they must wait). */
  const writeBytes = (s: Socket<Conn>, bytes: Uint8Array) => {
    const c = s.data;
    if (c.closed || bytes.length === 0) return;
    if (c.outBytes > 0) return queue(s, bytes.slice());
    const n = s.write(bytes);
    if (n < 0) return release(s);
    if (n < bytes.length) queue(s, bytes.slice(n));
  };

  const flush = (s: Socket<Conn>) => {
    const c = s.data;
    while (c.out.length && !c.closed) {
      const head = c.out[0] as Uint8Array;
      const n = s.write(head);
      if (n < 0) return release(s);
      if (n < head.length) {
        c.out[0] = head.subarray(n);
        c.outBytes -= n;
        outTotal -= n;
        return;
      }
      c.out.shift();
      c.outBytes -= head.length;
      outTotal -= head.length;
    }
  };

  /**
   * Encodes a batch of a follower's items into the shared scratch buffer and
   * writes it: the lines are not copied into strings of their own on the way
   * (plain lines are their prefix, their text and a newline).
   */
  const writeItems = (s: Socket<Conn>, f: Follower, items: FollowItem[]) => {
    let n = 0;
    const put = (str: string) => {
      // Worst case: 3 bytes per UTF-16 unit.
      if (n + str.length * 3 > scratch.length) {
        writeBytes(s, scratch.subarray(0, n));
        n = 0;
        if (str.length * 3 > scratch.length) return write(s, str);
      }
      n += enc.encodeInto(str, scratch.subarray(n)).written;
    };
    for (const item of items) {
      let text: string;
      if ("line" in item) {
        if (f.id === null) {
          put(prefixOf(item.line));
          put(item.line.text);
          put("\n");
          continue;
        }
        text = formatZinit(item.line);
      } else {
        controlCounters.linesDropped += item.dropped;
        text = droppedText(item.dropped);
      }
      put(f.id === null ? `${text}\n` : logNotification(f.id, text));
    }
    writeBytes(s, scratch.subarray(0, n));
  };

  /** Writes followers' lines from the ring while the socket takes them. */
  const pump = (s: Socket<Conn>) => {
    const c = s.data;
    while (!c.closed && c.outBytes === 0 && c.followers.length) {
      let wrote = false;
      for (const f of [...c.followers]) {
        const items = f.reader.take(FOLLOW_LINES, FOLLOW_CHARS);
        if (items.length === 0) {
          if (f.reader.done) {
            c.followers = c.followers.filter((x) => x !== f);
            followers--;
            // `log snapshot`: the connection ends with the snapshot.
            if (!f.live && f.id === null) return finish(s);
          }
          continue;
        }
        wrote = true;
        writeItems(s, f, items);
        if (c.closed || c.outBytes > 0) return;
      }
      if (!wrote) return;
    }
  };

  const startFollow = (s: Socket<Conn>, fl: LogFollow) => {
    const c = s.data;
    const reader = follow(api.logRing, fl.name, { history: fl.history, live: fl.live });
    c.followers.push({ reader, id: fl.id, live: fl.live });
    followers++;
    if (fl.live && !c.unsub) {
      c.unsub = api.logRing.subscribe(() => {
        if (!c.closed && c.outBytes === 0) pump(s);
      });
    }
    pump(s);
  };

  const perform = (s: Socket<Conn>, reply: Reply | null) => {
    if (!reply) return;
    if (reply.kind === "write") {
      write(s, reply.text);
      if (reply.close) finish(s);
      return;
    }
    if (followers >= MAX_FOLLOWERS) {
      controlCounters.followersRefused++;
      warn(`log follower refused: ${followers} follow (limit ${MAX_FOLLOWERS})`);
      write(s, reply.refused);
      if (reply.follow.id === null) finish(s);
      return;
    }
    write(s, reply.text);
    startFollow(s, reply.follow);
  };

  /** Handles the waiting requests one after another, while the client reads the answers. */
  const handle = async (s: Socket<Conn>) => {
    const c = s.data;
    if (c.busy) return;
    c.busy = true;
    try {
      while (c.lines.length && !c.closing && c.outBytes === 0) {
        const line = c.lines.shift() as string;
        c.lineChars -= line.length;
        inTotal -= line.length;
        try {
          const first = line.trimStart()[0];
          const reply =
            first === "{" || first === "["
              ? await handleJsonRpc(api, line, discover)
              : await handleLegacy(api, line);
          if (!c.closed) perform(s, reply);
        } catch (e) {
          log.error("control", `request failed: ${describeError(e)}`);
        }
      }
    } finally {
      c.busy = false;
    }
    maybeResume(s);
  };

  const handlers = {
    open(s: Socket<Conn>) {
      if (conns.size >= MAX_CONNECTIONS) {
        s.data = newConn(false);
        s.data.closing = true;
        controlCounters.refused++;
        warn(`connection refused: ${conns.size} open (limit ${MAX_CONNECTIONS})`);
        s.write(refusalLine(conns.size));
        linger(s);
        return;
      }
      s.data = newConn(true);
      conns.add(s);
    },
    data(s: Socket<Conn>, chunk: Buffer) {
      const c = s.data;
      if (c.closing) return;
      const text = chunk.toString();
      c.buf += text;
      inTotal += text.length;
      let nl = c.buf.indexOf("\n");
      while (nl >= 0) {
        const line = c.buf.slice(0, nl).replace(/\r$/, "");
        inTotal -= nl + 1 - line.length;
        c.buf = c.buf.slice(nl + 1);
        if (line.trim()) {
          c.lines.push(line);
          c.lineChars += line.length;
        } else inTotal -= line.length;
        nl = c.buf.indexOf("\n");
      }
      if (c.buf.length > MAX_REQUEST) {
        write(
          s,
          `${JSON.stringify({ state: "error", body: `request longer than ${MAX_REQUEST} bytes` })}\n`,
        );
        inTotal -= c.buf.length + c.lineChars;
        c.buf = "";
        c.lines = [];
        c.lineChars = 0;
        return finish(s);
      }
      if (c.lineChars >= MAX_REQUEST) pauseReading(s);
      while (inTotal > MAX_INPUT_TOTAL) {
        const v = largest((x) => x.buf.length + x.lineChars);
        if (!v) break;
        drop(
          v,
          `requests waiting from all clients reached ${MAX_INPUT_TOTAL} bytes; it sent the most`,
        );
        if (v === s) return;
      }
      void handle(s);
    },
    drain(s: Socket<Conn>) {
      const c = s.data;
      flush(s);
      if (c.closed || c.outBytes > 0) return;
      if (c.closing) return finish(s);
      pump(s);
      if (c.outBytes === 0) {
        maybeResume(s);
        void handle(s);
      }
    },
    close(s: Socket<Conn>) {
      lingering.delete(s);
      release(s);
    },
    timeout(s: Socket<Conn>) {
      s.terminate();
    },
    error(s: Socket<Conn>, err: Error) {
      release(s);
      warn(`client error: ${err.message}`);
    },
  };
  return handlers;
}

/** Starts listening on every path; returns a function that stops all of them. */
export function startControlServer(
  api: ControlApi,
  paths: readonly string[],
  discover: () => unknown,
): () => void {
  const stops: (() => void)[] = [];
  // One hub for every path: the limits hold over all control sockets together.
  const socket = createHub(api, discover);
  for (const path of paths) {
    try {
      if (!existsSync(dirname(path))) mkdirSync(dirname(path), { recursive: true });
      if (existsSync(path)) unlinkSync(path);
      const server = Bun.listen<Conn>({ unix: path, socket });
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
