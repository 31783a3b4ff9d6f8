/**
 * Service logs: a ring of timestamped lines shared by all services (zinit's
 * `-b`, default 2000 lines, and at most 4 MiB of text), fair between
 * services (a flood evicts its own lines); followers that read it by
 * position at their own pace (`zinit log`, the control socket); live
 * subscribers (SSE in the UI); and optional size-rotated files per service,
 * written asynchronously through a bounded queue. The ring, the followers,
 * the queue and the line splitter are pure; only rotatingFile touches the
 * disk.
 */
import { constants as fsConstants } from "node:fs";
import { type FileHandle, mkdir, open, rename, stat } from "node:fs/promises";
import { dirname } from "node:path";

/** One log line. `seq` is global and increasing (SSE Last-Event-ID resumes on it). */
export interface LogLine {
  seq: number;
  time: number; // ms since epoch
  service: string;
  stream: "stdout" | "stderr";
  text: string;
}

/** zinit's rendering: `[+] name: text` for stdout, `[-] name: text` for stderr. */
export function formatZinit(l: LogLine): string {
  return `${l.stream === "stdout" ? "[+]" : "[-]"} ${l.service}: ${l.text}`;
}

/**
 * A follower's place in a stream of lines: the global `seq` when it follows
 * every service, the line's number within its service (1, 2, …) when it
 * follows one. Positions only grow; a position the ring no longer holds was
 * evicted.
 */
export type LogPosition = number;

/** What {@link LogRing.read} returns. */
export interface LogRead {
  /** Lines after the position, oldest first. */
  lines: LogLine[];
  /** Lines of this stream after the position that the ring evicted before they were read. */
  dropped: number;
  /** The position to read after next time. */
  next: LogPosition;
}

/** A bounded ring of lines with subscribers. */
export interface LogRing {
  push(service: string, stream: LogLine["stream"], text: string): LogLine;
  /** Lines with seq > `after`, optionally for one service. */
  since(after: number, service?: string): LogLine[];
  subscribe(fn: (l: LogLine) => void): () => void;
  /**
   * Reads the stream of one service (or of all, `service` undefined) after
   * `after`: at most `limit` lines and about `maxChars` characters (always
   * at least one line), none past position `until`.
   */
  read(
    service: string | undefined,
    after: LogPosition,
    limit: number,
    maxChars?: number,
    until?: LogPosition,
  ): LogRead;
  /** The position just before the oldest line the ring holds of this stream. */
  start(service?: string): LogPosition;
  /** The position of the newest line ever pushed to this stream (0: none yet). */
  end(service?: string): LogPosition;
  /** How many lines of this stream the ring holds. */
  held(service?: string): number;
  readonly capacity: number;
  readonly maxChars: number;
}

/** Most characters of text the ring holds, over all its lines (zinit's ring counts only lines). */
export const RING_MAX_CHARS = 4 * 1024 * 1024;
/** Characters counted per line besides its text: the record and its fields. */
const LINE_OVERHEAD = 64;

interface Entry {
  line: LogLine;
  size: number;
  dead: boolean;
}

/** One service's lines in the ring: `entries[head…]`, numbered `evicted + 1…`. */
interface Stream {
  entries: (Entry | undefined)[];
  head: number;
  evicted: number;
  count: number;
  chars: number;
}

/** What the ring holds: every entry in seq order (`all[allHead…]`), and per service. */
interface RingState {
  /** Evicted entries are marked dead and compacted away. */
  all: Entry[];
  allHead: number;
  live: number;
  chars: number;
  seq: number;
  streams: Map<string, Stream>;
  nonEmpty: Set<Stream>;
}

/**
 * How many streams hold each number of lines, the most any holds, and one
 * that holds it: the victim is found without a scan while one service holds
 * the most (a flood).
 */
function lineCounts() {
  const byCount = new Map<number, number>();
  let maxCount = 0;
  let top: Stream | undefined;
  return {
    /** `st` held `from` lines and now holds `st.count`. */
    recount(st: Stream, from: number): void {
      const to = st.count;
      if (from) {
        const n = (byCount.get(from) as number) - 1;
        if (n) byCount.set(from, n);
        else byCount.delete(from);
      }
      if (to) byCount.set(to, (byCount.get(to) ?? 0) + 1);
      if (to > maxCount) maxCount = to;
      else if (from === maxCount && !byCount.has(from)) maxCount = to;
      if (to === maxCount && to > 0) top = st;
    },
    /** The stream holding the most lines when no other holds as many. */
    lone(): Stream | undefined {
      return top && top.count === maxCount && byCount.get(maxCount) === 1 ? top : undefined;
    },
  };
}

type LineCounts = ReturnType<typeof lineCounts>;

/** The stream holding the most (lines or characters); ties: the one with the oldest line. */
function victim(s: RingState, counts: LineCounts, byChars: boolean): Stream | undefined {
  const lone = byChars ? undefined : counts.lone();
  if (lone) return lone;
  let best: Stream | undefined;
  let bestSize = -1;
  let bestSeq = Number.POSITIVE_INFINITY;
  for (const st of s.nonEmpty) {
    const size = byChars ? st.chars : st.count;
    const oldest = (st.entries[st.head] as Entry).line.seq;
    if (size > bestSize || (size === bestSize && oldest < bestSeq)) {
      best = st;
      bestSize = size;
      bestSeq = oldest;
    }
  }
  return best;
}

/** Drops the oldest line of `st`. */
function evict(s: RingState, counts: LineCounts, st: Stream): void {
  const e = st.entries[st.head] as Entry;
  st.entries[st.head] = undefined;
  st.head++;
  st.evicted++;
  st.count--;
  counts.recount(st, st.count + 1);
  st.chars -= e.size;
  if (st.count === 0) s.nonEmpty.delete(st);
  if (st.head > 64 && st.head * 2 > st.entries.length) {
    st.entries = st.entries.slice(st.head);
    st.head = 0;
  }
  e.dead = true;
  s.live--;
  s.chars -= e.size;
}

/** Drops dead entries from the front of `all`, and rebuilds it once most of it is dead. */
function compact(s: RingState): void {
  while (s.allHead < s.all.length && (s.all[s.allHead] as Entry).dead) s.allHead++;
  if (s.all.length - s.allHead > 2 * s.live + 64) {
    s.all = s.all.slice(s.allHead).filter((e) => !e.dead);
    s.allHead = 0;
  } else if (s.allHead > 64 && s.allHead * 2 > s.all.length) {
    s.all = s.all.slice(s.allHead);
    s.allHead = 0;
  }
}

/** Index in `all` of the first entry with seq > `after`. */
function firstAfter(s: RingState, after: number): number {
  let lo = s.allHead;
  let hi = s.all.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((s.all[mid] as Entry).line.seq > after) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Adds a line to the ring, then evicts (fairly) until it is within its bounds. */
function pushLine(
  s: RingState,
  counts: LineCounts,
  line: LogLine,
  bounds: { capacity: number; maxChars: number },
): void {
  let st = s.streams.get(line.service);
  if (!st) {
    st = { entries: [], head: 0, evicted: 0, count: 0, chars: 0 };
    s.streams.set(line.service, st);
  }
  const e: Entry = { line, size: line.text.length + LINE_OVERHEAD, dead: false };
  st.entries.push(e);
  st.count++;
  counts.recount(st, st.count - 1);
  st.chars += e.size;
  s.nonEmpty.add(st);
  s.all.push(e);
  s.live++;
  s.chars += e.size;
  while (s.live > 1 && (s.live > bounds.capacity || s.chars > bounds.maxChars)) {
    const v = victim(s, counts, s.live <= bounds.capacity);
    if (!v) break;
    evict(s, counts, v);
  }
  compact(s);
}

/** Lines with seq > `after`, of all services or of one. */
function linesSince(s: RingState, after: number, service?: string): LogLine[] {
  const out: LogLine[] = [];
  if (service === undefined) {
    for (let i = firstAfter(s, after); i < s.all.length; i++) {
      const e = s.all[i] as Entry;
      if (!e.dead) out.push(e.line);
    }
    return out;
  }
  const st = s.streams.get(service);
  if (!st) return out;
  for (let i = st.head; i < st.entries.length; i++) {
    const e = st.entries[i] as Entry;
    if (e.line.seq > after) out.push(e.line);
  }
  return out;
}

/** How much a read may still take: at most `limit` lines, about `maxText` characters, at least one line. */
function readRoom(limit: number, maxText: number) {
  const lines: LogLine[] = [];
  let size = 0;
  return {
    lines,
    fits: () => lines.length < limit && (lines.length === 0 || size < maxText),
    add(l: LogLine) {
      lines.push(l);
      size += l.text.length;
    },
  };
}

/** LogRing.read of all services: positions are seqs. */
function readAll(
  s: RingState,
  after: LogPosition,
  room: ReturnType<typeof readRoom>,
  until: LogPosition,
): LogRead {
  const stop = Math.min(s.seq, until);
  let last = after;
  for (let i = firstAfter(s, after); i < s.all.length && room.fits(); i++) {
    const e = s.all[i] as Entry;
    if (e.line.seq > stop) break;
    if (e.dead) continue;
    room.add(e.line);
    last = e.line.seq;
  }
  const { lines } = room;
  // Nothing left to read: every position up to the end was evicted.
  if (lines.length === 0) last = Math.max(after, stop);
  return { lines, dropped: last - after - lines.length, next: last };
}

/** LogRing.read of one service: positions are its line numbers. */
function readOne(
  st: Stream | undefined,
  after: LogPosition,
  room: ReturnType<typeof readRoom>,
  until: LogPosition,
): LogRead {
  const { lines } = room;
  if (!st) return { lines, dropped: 0, next: after };
  const stop = Math.min(st.evicted + st.count, until);
  const gone = Math.max(0, Math.min(st.evicted, stop) - after);
  let pos = Math.max(after, Math.min(st.evicted, stop));
  while (pos < stop && room.fits()) {
    room.add((st.entries[st.head + (pos - st.evicted)] as Entry).line);
    pos++;
  }
  return { lines, dropped: gone, next: Math.max(pos, after) };
}

/**
 * Creates a ring keeping at most `capacity` lines and `maxChars` characters
 * of text. When it is full, the oldest line of the service holding the most
 * (lines when over `capacity`, characters when over `maxChars`) leaves: a
 * service that floods evicts its own lines, never a quiet service's, while
 * a service alone can fill the whole ring.
 */
export function createRing(
  capacity = 2000,
  now: () => number = Date.now,
  maxChars = RING_MAX_CHARS,
): LogRing {
  const s: RingState = {
    all: [],
    allHead: 0,
    live: 0,
    chars: 0,
    seq: 0,
    streams: new Map(),
    nonEmpty: new Set(),
  };
  const counts = lineCounts();
  const bounds = { capacity, maxChars };
  const subs = new Set<(l: LogLine) => void>();
  return {
    capacity,
    maxChars,
    push(service, stream, text) {
      const line: LogLine = { seq: ++s.seq, time: now(), service, stream, text };
      pushLine(s, counts, line, bounds);
      for (const fn of subs) {
        try {
          fn(line);
        } catch {
          // a broken subscriber must not stop logging
        }
      }
      return line;
    },
    since: (after, service) => linesSince(s, after, service),
    read(
      service,
      after,
      limit,
      maxText = Number.POSITIVE_INFINITY,
      until = Number.POSITIVE_INFINITY,
    ) {
      const room = readRoom(limit, maxText);
      if (service === undefined) return readAll(s, after, room, until);
      return readOne(s.streams.get(service), after, room, until);
    },
    start(service) {
      if (service === undefined) {
        const first = s.all[s.allHead];
        return first ? first.line.seq - 1 : s.seq;
      }
      return s.streams.get(service)?.evicted ?? 0;
    },
    end(service) {
      if (service === undefined) return s.seq;
      const st = s.streams.get(service);
      return st ? st.evicted + st.count : 0;
    },
    held(service) {
      if (service === undefined) return s.live;
      return s.streams.get(service)?.count ?? 0;
    },
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
  };
}

/** What a follower gets: a line, or how many lines it missed (the ring evicted them first). */
export type FollowItem = { line: LogLine } | { dropped: number };

/** A reader of one stream of the ring by position: nothing is copied for it until it takes. */
export interface LogFollower {
  /** The next lines (at most `limit`, about `maxChars` characters); [] when there is nothing yet. */
  take(limit: number, maxChars: number): FollowItem[];
  /** True once a follower without `live` has read the ring as it was when it started. */
  readonly done: boolean;
}

/** The parts of a ring a follower reads. */
export type LogReader = Pick<LogRing, "read" | "start" | "end" | "held" | "subscribe">;

/**
 * A follower of one service (or all, `service` undefined). `history`: first
 * the lines the ring holds now (lines it had evicted before are not
 * announced); `live`: then every new line. Lines evicted before the follower
 * took them (it read too slowly) come as one `{dropped}` item. Pure.
 */
export function follow(
  ring: LogReader,
  service: string | undefined,
  opts: { history: boolean; live: boolean },
): LogFollower {
  const end0 = ring.end(service);
  let pos = opts.history ? ring.start(service) : end0;
  // Holes the history already had (another service's lines evicted in between) are not news.
  const holesAtStart = opts.history ? end0 - pos - ring.held(service) : 0;
  let inHistory = pos < end0;
  let historyDropped = 0;
  let done = false;
  return {
    get done() {
      return done;
    },
    take(limit, maxChars) {
      const out: FollowItem[] = [];
      if (done) return out;
      let missed = 0;
      if (inHistory) {
        const r = ring.read(service, pos, limit, maxChars, end0);
        historyDropped += r.dropped;
        pos = r.next;
        for (const line of r.lines) out.push({ line });
        if (pos < end0) return out;
        inHistory = false;
        missed = Math.max(0, historyDropped - holesAtStart);
        if (out.length) {
          if (missed > 0) out.push({ dropped: missed });
          return out;
        }
      }
      if (!opts.live) {
        done = true;
        if (missed > 0) out.push({ dropped: missed });
        return out;
      }
      const r = ring.read(service, pos, limit, maxChars);
      pos = r.next;
      if (missed + r.dropped > 0) out.push({ dropped: missed + r.dropped });
      for (const line of r.lines) out.push({ line });
      return out;
    },
  };
}

/** Longest line kept, in bytes; longer ones are cut so one runaway writer cannot eat memory. */
export const MAX_LINE = 8192;

/**
 * Splits a byte stream into lines, keeping the partial tail between chunks.
 * Splits bytes, then decodes each line on its own: a line is a string of its
 * own, never a slice of the chunk it came in (a kept slice keeps the whole
 * chunk alive: 2000 short lines could hold 2000 × 64 KiB). Pure.
 */
export function lineSplitter(onLine: (text: string) => void) {
  const dec = new TextDecoder();
  let tail: Uint8Array | null = null;
  const join = (a: Uint8Array | null, b: Uint8Array): Uint8Array => {
    if (!a) return b;
    const out = new Uint8Array(a.length + b.length);
    out.set(a);
    out.set(b, a.length);
    return out;
  };
  const emit = (bytes: Uint8Array) => {
    let end = bytes.length;
    if (end > 0 && bytes[end - 1] === 13) end--;
    onLine(dec.decode(bytes.subarray(0, Math.min(end, MAX_LINE))));
  };
  return {
    /** Splits a chunk; returns how many lines it ended (its newlines, or the cut of an overlong one). */
    push(chunk: Uint8Array): number {
      let lines = 0;
      let start = 0;
      let nl = chunk.indexOf(10, start);
      while (nl >= 0) {
        emit(join(tail, chunk.subarray(start, nl)));
        lines++;
        tail = null;
        start = nl + 1;
        nl = chunk.indexOf(10, start);
      }
      if (start < chunk.length) {
        // A copy: the tail must not keep the chunk alive either.
        tail = join(tail, chunk.slice(start, start + MAX_LINE + 1));
        if (tail.length > MAX_LINE) {
          emit(tail.subarray(0, MAX_LINE));
          lines++;
          tail = null;
        }
      }
      return lines;
    },
    end() {
      if (tail?.length) emit(tail);
      tail = null;
    },
  };
}

/** Pure: the renames that rotate `path` keeping `keep` old files, oldest first. */
export function rotationPlan(path: string, keep: number): [string, string][] {
  const plan: [string, string][] = [];
  for (let i = keep - 1; i >= 1; i--) plan.push([`${path}.${i}`, `${path}.${i + 1}`]);
  plan.push([path, `${path}.1`]);
  return plan;
}

/** zinit's words for lines a reader missed (its ring's "lagged" message). */
export const droppedText = (n: number): string => `[-] zinit: ${n} lines dropped`;

/**
 * A queue of lines bounded in characters, for a writer that may fall
 * behind: a line that does not fit is dropped and counted, never waited
 * for. The next line that fits, or the next take() once the queue is empty,
 * is preceded by `marker(count)`. Pure.
 */
export function lineQueue(maxChars: number, marker: (dropped: number) => string) {
  let items: string[] = [];
  /** Per item: 0 for a line, N for a marker of N dropped lines. */
  let marks: number[] = [];
  let head = 0;
  let chars = 0;
  let dropped = 0;
  let lost = 0;
  let lastLines = 0;
  let lastMarked = 0;
  const add = (s: string, mark: number) => {
    items.push(s);
    marks.push(mark);
    chars += s.length;
  };
  /** Removes items [head, head + n): returns how many were lines and how many drops their markers carried. */
  const remove = (n: number) => {
    let lines = 0;
    let marked = 0;
    for (let i = head; i < head + n; i++) {
      const m = marks[i] as number;
      if (m) marked += m;
      else lines++;
      chars -= (items[i] as string).length;
    }
    head += n;
    if (head === items.length) {
      items = [];
      marks = [];
      head = 0;
    } else if (head > 1024 && head * 2 > items.length) {
      items = items.slice(head);
      marks = marks.slice(head);
      head = 0;
    }
    return { lines, marked };
  };
  return {
    /** Queues a line; false (and counted) when it does not fit. */
    push(line: string): boolean {
      const mark = dropped > 0 ? marker(dropped) : "";
      if (chars + line.length + mark.length > maxChars) {
        dropped++;
        lost++;
        return false;
      }
      if (mark) add(mark, dropped);
      dropped = 0;
      add(line, 0);
      return true;
    },
    /** Takes queued lines, oldest first, totalling at most `max` characters (at least one line). */
    take(max: number): string[] {
      const out: string[] = [];
      let n = 0;
      for (let i = head; i < items.length; i++) {
        const s = items[i] as string;
        if (out.length > 0 && n + s.length > max) break;
        out.push(s);
        n += s.length;
      }
      ({ lines: lastLines, marked: lastMarked } = remove(out.length));
      if (out.length === 0 && dropped > 0) {
        out.push(marker(dropped));
        lastMarked = dropped;
        dropped = 0;
      }
      return out;
    },
    /** The lines of the last take() could not be written: they count as dropped. */
    failed(): void {
      dropped += lastLines + lastMarked;
      lost += lastLines;
      lastLines = 0;
      lastMarked = 0;
    },
    /** Drops (and counts) everything queued. */
    clear(): void {
      const { lines, marked } = remove(items.length - head);
      dropped += lines + marked;
      lost += lines;
    },
    /** Characters of the next line, 0 when none is queued. */
    peek(): number {
      return head < items.length ? (items[head] as string).length : 0;
    },
    /** Lines or a marker are waiting. */
    get pending(): boolean {
      return head < items.length || dropped > 0;
    },
    /** Characters queued. */
    get chars(): number {
      return chars;
    },
    /** Lines dropped since the queue was made. */
    get lost(): number {
      return lost;
    },
  };
}

/** Characters of lines waiting for one log file; beyond it lines are dropped and counted. */
export const LOG_FILE_BUFFER = 256 * 1024;
/** Most characters handed to one write(2). */
const WRITE_CHUNK = 64 * 1024;

/** A service's log file: write() never blocks and never throws. */
export interface LogFile {
  /** Queues a line (no newline); dropped and counted when the queue is full. */
  write(line: string): void;
  /** Resolves once every queued line is written (or dropped). */
  flush(): Promise<void>;
  /** Lines dropped so far (queue full or write failed). */
  readonly dropped: number;
}

/**
 * A log file rotated by size × count, written asynchronously by one writer
 * so a service that prints as fast as it can never holds up PID 1's event
 * loop: lines wait in a bounded queue (`buffer` characters); when it is full
 * they are dropped and counted, and a `[-] zinit: N lines dropped` line (or
 * `marker(N)`) marks the place once the writer catches up. The file is
 * opened non-blocking and must be a regular file (a FIFO or a device would
 * block or never end); it is closed whenever the queue is empty. Errors are
 * reported once through `onError`, never thrown.
 */
export function rotatingFile(
  path: string,
  maxSize: number,
  keep: number,
  onError: (msg: string) => void,
  opts: { buffer?: number; marker?: (dropped: number) => string } = {},
): LogFile {
  const q = lineQueue(opts.buffer ?? LOG_FILE_BUFFER, opts.marker ?? droppedText);
  let fh: FileHandle | null = null;
  let size = 0;
  let failed = false;
  let running: Promise<void> | null = null;

  const openFile = async (): Promise<FileHandle> => {
    await mkdir(dirname(path), { recursive: true });
    const before = await stat(path).catch(() => null);
    if (before && !before.isFile()) throw new Error("not a regular file");
    // O_NONBLOCK as well: should a FIFO appear meanwhile, open(2) fails instead of waiting.
    const h = await open(
      path,
      fsConstants.O_WRONLY | fsConstants.O_APPEND | fsConstants.O_CREAT | fsConstants.O_NONBLOCK,
      0o644,
    );
    try {
      const st = await h.stat();
      if (!st.isFile()) throw new Error("not a regular file");
      size = st.size;
    } catch (e) {
      await h.close().catch(() => {});
      throw e;
    }
    return h;
  };

  const closeFile = async () => {
    const h = fh;
    fh = null;
    if (h) await h.close().catch(() => {});
  };

  const run = async () => {
    while (q.pending) {
      let taken = false;
      try {
        if (!fh) fh = await openFile();
        if (size > 0 && size + q.peek() + 1 > maxSize) {
          await closeFile();
          for (const [from, to] of rotationPlan(path, keep)) {
            try {
              await rename(from, to);
            } catch {
              // that generation does not exist yet
            }
          }
          fh = await openFile();
        }
        const room = size > 0 ? maxSize - size : maxSize;
        const batch = q.take(Math.max(1, Math.min(WRITE_CHUNK, room)));
        taken = true;
        const data = `${batch.join("\n")}\n`;
        await fh.write(data);
        size += Buffer.byteLength(data);
        taken = false;
        failed = false;
      } catch (e) {
        if (taken) q.failed();
        if (!failed) onError(`${path}: ${(e as Error).message}`);
        failed = true;
        await closeFile();
        // Lines that arrive while the file cannot be written are dropped (and counted) too.
        q.clear();
        break;
      }
    }
    await closeFile();
  };

  const kick = () => {
    if (running) return;
    running = run().finally(() => {
      running = null;
      if (q.pending && !failed) kick();
    });
  };

  return {
    write(line) {
      q.push(line);
      kick();
    },
    async flush() {
      while (running) await running;
    },
    get dropped() {
      return q.lost;
    },
  };
}
