/**
 * Log followers (`log`, stream_subscribeLogs): a follower is a position in
 * the ring, never a queue. Lines are read from the ring only while the
 * client's socket takes them; lines the ring evicted before a slow client
 * got to them come as one `[-] zinit: N lines dropped` line.
 */
import {
  droppedText,
  type FollowItem,
  follow,
  formatZinit,
  type LogLine,
  type LogReader,
} from "../supervisor/logs.ts";
import {
  type Connections,
  type ControlSocket,
  controlCounters,
  type Follower,
} from "./connections.ts";
import { logNotification } from "./jsonrpc.ts";
import type { LogFollow } from "./protocol.ts";

/** Lines and characters a follower reads from the ring per write. */
const FOLLOW_LINES = 128;
const FOLLOW_CHARS = 8 * 1024;

const enc = new TextEncoder();
/** Where followers' batches are encoded (one at a time: the server is single-threaded). */
const scratch = new Uint8Array(512 * 1024);
/** `[+] name: ` for each service and stream, so plain log lines need no string of their own. */
const prefixes = new Map<string, string>();

/** `[+] name: ` (stdout) or `[-] name: ` (stderr): the start of a plain log line. */
export function prefixOf(l: LogLine): string {
  const key = `${l.stream === "stdout" ? "+" : "-"}${l.service}`;
  let p = prefixes.get(key);
  if (p === undefined) {
    p = `[${key[0]}] ${l.service}: `;
    if (prefixes.size < 10_000) prefixes.set(key, p);
  }
  return p;
}

/**
 * Encodes a batch of a follower's items into the shared scratch buffer and
 * writes it: the lines are not copied into strings of their own on the way
 * (plain lines are their prefix, their text and a newline).
 */
function writeItems(conns: Connections, s: ControlSocket, f: Follower, items: FollowItem[]): void {
  let n = 0;
  const put = (str: string) => {
    // Worst case: 3 bytes per UTF-16 unit.
    if (n + str.length * 3 > scratch.length) {
      conns.writeBytes(s, scratch.subarray(0, n));
      n = 0;
      if (str.length * 3 > scratch.length) return conns.write(s, str);
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
  conns.writeBytes(s, scratch.subarray(0, n));
}

/** Writes followers' lines from the ring while the socket takes them. */
export function pump(conns: Connections, s: ControlSocket): void {
  const c = s.data;
  while (!c.closed && c.outBytes === 0 && c.followers.length) {
    let wrote = false;
    for (const f of [...c.followers]) {
      const items = f.reader.take(FOLLOW_LINES, FOLLOW_CHARS);
      if (items.length === 0) {
        if (f.reader.done) {
          c.followers = c.followers.filter((x) => x !== f);
          conns.followers--;
          // `log snapshot`: the connection ends with the snapshot.
          if (!f.live && f.id === null) {
            conns.finish(s);
            return;
          }
        }
        continue;
      }
      wrote = true;
      writeItems(conns, s, f, items);
      if (c.closed || c.outBytes > 0) return;
    }
    if (!wrote) return;
  }
}

/** Starts a log stream on a connection; live streams wake up when the ring gets a line. */
export function startFollow(
  conns: Connections,
  ring: LogReader,
  s: ControlSocket,
  fl: LogFollow,
): void {
  const c = s.data;
  const reader = follow(ring, fl.name, { history: fl.history, live: fl.live });
  c.followers.push({ reader, id: fl.id, live: fl.live });
  conns.followers++;
  if (fl.live && !c.unsub) {
    c.unsub = ring.subscribe(() => {
      if (!c.closed && c.outBytes === 0) pump(conns, s);
    });
  }
  pump(conns, s);
}

/** Ends the JSON-RPC subscription `id` of a connection (stream_unsubscribeLogs); false if it has none such. */
export function unfollow(conns: Connections, s: ControlSocket, id: number): boolean {
  const c = s.data;
  const f = c.followers.find((x) => x.id === id);
  if (!f) return false;
  c.followers = c.followers.filter((x) => x !== f);
  conns.followers--;
  return true;
}
