/**
 * Log lines to HTTP clients in bounded memory. Every SSE follower and every
 * JSON log page is a cursor into the log ring plus a queue of encoded bytes.
 * Bytes are counted after encoding (a control character is six bytes in
 * JSON), per client (`perClient`) and over all clients together (a shared
 * Budget). A client whose queue is full is sent nothing more: it catches up
 * from the ring by its cursor once its queue drains (on the stream of all
 * services, lines the ring dropped meanwhile are announced as a gap). A
 * client that takes nothing for a whole heartbeat period while bytes wait
 * for it is dropped (a browser reconnects with Last-Event-ID). So a client
 * that never reads holds at most `perClient` bytes, and all of them together
 * at most the budget. Catching up runs in turns that yield to the event loop
 * (createScheduler), and followers share the encoding of the lines they all
 * send (createEventCache), so a burst of followers costs little CPU.
 *
 * Pure: the queue is an interface (ByteQueue); `byteStream` backs it with a
 * ReadableStream whose queue is measured in bytes, which is what app.ts
 * returns as the response body (and, every 128 MiB sent, asks for a full
 * garbage collection: gc-hint.ts).
 */
import { createGcHint, fullCollection } from "../supervisor/gc-hint.ts";
import type { LogLine } from "../supervisor/logs.ts";

/** Bytes queued for all log clients together, the most allowed, and who waits for room. */
export interface Budget {
  used: number;
  readonly max: number;
  /** Clients with room in their own queue that wait for room in the budget (oldest first). */
  readonly waiters: Set<() => void>;
}

/** A budget of `max` bytes, none used. */

/**
 * Pieces gathered for one push: `add` takes a piece while it fits the
 * client's queue bound and the shared budget, counting what is pending.
 */
function gather(out: { fits(n: number, pending?: number): boolean }) {
  const parts: Uint8Array[] = [];
  let pending = 0;
  return {
    parts,
    add(b: Uint8Array): boolean {
      if (!out.fits(b.byteLength, pending)) return false;
      parts.push(b);
      pending += b.byteLength;
      return true;
    },
    size: (): number => pending,
  };
}

export function createBudget(max: number): Budget {
  return { used: 0, max, waiters: new Set() };
}

/** Where a client's bytes wait until the server writes them to its socket. */
export interface ByteQueue {
  /** Bytes queued and not yet taken by the server. */
  queued(): number;
  enqueue(bytes: Uint8Array): void;
  /** Ends the stream normally (only called once the queue is empty). */
  close(): void;
  /** Ends the stream at once, discarding what is queued. */
  abort(reason: string): void;
}

/** Largest piece handed to the server at once (what it may hold beyond the queue). */
export const CHUNK = 16 * 1024;

/** A client's queue and its share of the budget. */
export type Outbox = ReturnType<typeof createOutbox>;

/**
 * Wraps a client's queue: counts its bytes against `perClient` and the shared
 * budget. `onEnd` is called once when the client ends, whatever the reason.
 */
export function createOutbox(
  queue: ByteQueue,
  perClient: number,
  budget: Budget,
  onEnd: () => void = () => {},
) {
  let counted = 0;
  // A new client gets one whole period before it can count as stalled.
  let progress = true;
  let open = true;
  /** Brings the count (and the budget) up to date with what the server took. */
  const sync = () => {
    if (!open) return;
    const q = queue.queued();
    if (q < counted) progress = true;
    budget.used += q - counted;
    counted = q;
  };
  /**
   * Ends the client: `undefined` closes normally, a reason aborts (the queue
   * is discarded), `null` means the client went away. Its bytes leave the budget.
   */
  const end = (reason?: string | null): void => {
    if (!open) return;
    open = false;
    budget.used -= counted;
    counted = 0;
    if (reason === undefined) queue.close();
    else if (reason !== null) queue.abort(reason);
    onEnd();
    wake();
  };
  /** Room in the budget again: let waiting clients refill, oldest first, while it lasts. */
  const wake = () => {
    for (const w of budget.waiters) {
      if (budget.used + perClient / 2 > budget.max) return;
      budget.waiters.delete(w);
      w();
    }
  };
  return {
    sync,
    /** After this client had its turn: let clients waiting for the budget refill. */
    wake,
    get queued(): number {
      return counted;
    },
    get open(): boolean {
      return open;
    },
    budget,
    /**
     * Whether `n` more bytes fit after `pending` bytes not yet pushed: under the
     * client's bound (one oversized piece may go into an empty queue) and under the budget.
     */
    fits(n: number, pending = 0): boolean {
      const mine = counted + pending;
      return (mine === 0 || mine + n <= perClient) && budget.used + pending + n <= budget.max;
    },
    push(bytes: Uint8Array): void {
      if (!open || bytes.byteLength === 0) return;
      // In pieces: the server holds the piece it is writing outside the queue (uncounted).
      for (let at = 0; at < bytes.byteLength; at += CHUNK) {
        const piece = bytes.subarray(at, Math.min(at + CHUNK, bytes.byteLength));
        try {
          queue.enqueue(piece);
        } catch {
          // The stream ended under us (the client went away): stop counting it.
          end(null);
          return;
        }
        counted += piece.byteLength;
        budget.used += piece.byteLength;
      }
    },
    /**
     * Worth refilling: at most half full, and the budget has room for half a
     * queue (if not, `waiter` is called once there is).
     */
    hungry(waiter?: () => void): boolean {
      if (counted > perClient / 2) return false;
      if (budget.used + perClient / 2 <= budget.max) return true;
      if (waiter) budget.waiters.add(waiter);
      return false;
    },
    /** Once per period: true when bytes were waiting and none were taken since the last call. */
    stalled(): boolean {
      sync();
      const s = counted > 0 && !progress;
      progress = false;
      return s;
    },
    end,
  };
}

/** Catch-up work: returns the bytes it pushed. */
export type Job = () => number;

/**
 * Runs catch-up work in turns of at most about `quota` bytes, yielding to the
 * event loop between turns (`defer`, setImmediate in the server), so that
 * many clients catching up at once (a burst of connections under a log
 * flood) cannot hold up other requests, /health included.
 */
export function createScheduler(quota: number, defer: (run: () => void) => void) {
  const jobs = new Set<Job>();
  let armed = false;
  const arm = () => {
    if (armed) return;
    armed = true;
    defer(run);
  };
  const run = () => {
    armed = false;
    let spent = 0;
    for (const job of jobs) {
      if (spent >= quota) break;
      jobs.delete(job);
      try {
        spent += job();
      } catch {
        // One client's failure must not stop the others (nor reach PID 1's event loop).
      }
    }
    if (jobs.size > 0) arm();
  };
  return {
    add(job: Job): void {
      jobs.add(job);
      arm();
    },
    delete(job: Job): void {
      jobs.delete(job);
    },
    get size(): number {
      return jobs.size;
    },
  };
}

/** Where catch-up work waits for its turn. */
export type Scheduler = ReturnType<typeof createScheduler>;

/** Concatenates byte chunks (one push instead of many small ones). */
function concat(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0] as Uint8Array;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

const enc = new TextEncoder();

/** The SSE event of a line: `id`, `event: log`, `data` (JSON: no raw newline can split it). */
export function sseEvent(l: LogLine): string {
  return `id: ${l.seq}\nevent: log\ndata: ${JSON.stringify(l)}\n\n`;
}

/** The SSE event announcing `missed` lines that left the ring before the client got them. */
export function gapEvent(missed: number): string {
  return `event: gap\ndata: ${JSON.stringify({ missed })}\n\n`;
}

/**
 * Encodes lines as SSE events, keeping the last `maxBytes` of them: followers
 * that read the same lines (every live follower, and followers catching up
 * from the same place) share one encoding instead of making one each.
 */
export function createEventCache(maxBytes: number) {
  const cache = new Map<LogLine, Uint8Array>();
  let bytes = 0;
  return {
    encode(l: LogLine): Uint8Array {
      const hit = cache.get(l);
      if (hit) return hit;
      const b = enc.encode(sseEvent(l));
      cache.set(l, b);
      bytes += b.byteLength;
      while (bytes > maxBytes && cache.size > 1) {
        const [k, v] = cache.entries().next().value as [LogLine, Uint8Array];
        cache.delete(k);
        bytes -= v.byteLength;
      }
      return b;
    },
    get bytes(): number {
      return bytes;
    },
  };
}

/** A heartbeat comment (keeps an idle stream open through proxies and Bun's idle timeout). */
export const HEARTBEAT = enc.encode(": heartbeat\n\n");

/** What a follower or a page reads. */
export interface LineSource {
  /** At most `limit` lines with seq > `after` (of one service, or of all), oldest first: the ring. */
  since(after: number, service: string | undefined, limit: number): readonly LogLine[];
}

/** Lines read from the ring at once while catching up (the queue takes what fits). */
const BATCH = 64;

/** Options of a follower (SSE). */
export interface FollowerOptions extends LineSource {
  /** The seq to start after (Last-Event-ID or ?after=; 0: everything in the ring). */
  after: number;
  /** Only this service's lines; all when undefined. */
  service?: string;
  /**
   * Calls `fn` with every new line of this follower's service (or of all);
   * returns the unsubscribe. The follower listens only while it is caught up.
   */
  subscribe(fn: (l: LogLine) => void): () => void;
  /** The bytes of a line's event (a cache shared by the followers: see createEventCache). */
  encode?: (l: LogLine) => Uint8Array;
  /** Where catch-up work runs (default: at once). */
  scheduler?: Scheduler;
}

/**
 * An SSE follower. While it is caught up it listens to new lines and pushes
 * each while it fits; once one does not, it stops listening and catches up
 * from the ring by its cursor whenever the server takes bytes (`pull`), the
 * budget has room again, or a heartbeat period ends (`tick`).
 */
export function createFollower(out: Outbox, o: FollowerOptions) {
  const encode = o.encode ?? ((l: LogLine) => enc.encode(sseEvent(l)));
  /** The last seq this follower has dealt with. */
  let cursor = o.after;
  /** Caught up with the ring and listening: new lines are pushed as they come. */
  let unsubscribe: (() => void) | null = null;

  const behind = () => {
    unsubscribe?.();
    unsubscribe = null;
  };

  /** Catches up from the ring as far as the queue and the budget allow; returns the bytes pushed. */
  const refill: Job = () => {
    if (unsubscribe || !out.open) return 0;
    out.sync();
    if (!out.hungry(later)) return 0;
    const { parts, add, size } = gather(out);
    let complete = true;
    read: for (;;) {
      const lines = o.since(cursor, o.service, BATCH);
      for (const l of lines) {
        // Of all services, seqs are dense: a hole is lines the ring dropped before this client got them.
        const hole = o.service === undefined && cursor > 0 ? l.seq - cursor - 1 : 0;
        if (hole > 0) {
          if (!add(enc.encode(gapEvent(hole)))) {
            complete = false;
            break read;
          }
          cursor = l.seq - 1;
        }
        if (!add(encode(l))) {
          complete = false;
          break read;
        }
        cursor = l.seq;
      }
      if (lines.length < BATCH) break;
    }
    // Pushed as they are: events shared with other followers are not copied.
    for (const b of parts) out.push(b);
    if (complete && out.open) unsubscribe = o.subscribe(line);
    return size();
  };
  /** Refill now, or in the scheduler's next turn. */
  const later = (): void => {
    if (o.scheduler) o.scheduler.add(refill);
    else refill();
  };

  /** A new line (of this follower's service) while it is caught up. */
  const line = (l: LogLine): void => {
    if (!out.open || !unsubscribe || l.seq <= cursor) return;
    out.sync();
    const b = encode(l);
    if (out.fits(b.byteLength)) {
      out.push(b);
      cursor = l.seq;
    } else behind(); // the ring keeps the line: the cursor finds it again
  };

  return {
    /** Starts the stream: what the ring holds after `after`, as far as it fits. */
    start(): void {
      out.push(enc.encode("retry: 2000\n\n"));
      later();
    },
    /** The server took bytes: catch up if behind (this client first, then those waiting). */
    pull(): void {
      out.sync();
      if (!unsubscribe) later();
      out.wake();
    },
    /** Once per heartbeat period: drop a stalled client, else send a heartbeat. */
    tick(): void {
      if (!out.open) return;
      if (out.stalled()) {
        out.end("the client read nothing for a whole heartbeat period");
        return;
      }
      if (out.fits(HEARTBEAT.byteLength)) out.push(HEARTBEAT);
      if (!unsubscribe) later();
      out.wake();
    },
    /** The client is gone: stop listening and waiting. */
    stop(): void {
      behind();
      out.budget.waiters.delete(later);
      o.scheduler?.delete(refill);
    },
    get cursor(): number {
      return cursor;
    },
    /** Caught up and listening. */
    get live(): boolean {
      return unsubscribe !== null;
    },
  };
}

/** Options of a JSON log page. */
export interface PageOptions extends LineSource {
  after: number;
  service?: string;
  /** Most lines in the page. */
  maxLines: number;
  /** Most bytes of JSON in the page (at least one line always goes, so paging advances). */
  maxBytes: number;
  /** Where the work of filling the queue runs (default: at once). */
  scheduler?: Scheduler;
}

/**
 * A JSON log page: `[line, line, …]` of at most `maxLines` lines and
 * `maxBytes` bytes after `after`, streamed through the queue as the server
 * takes it. The next page is `after` = the seq of the page's last line; an
 * empty page means the client is at the end of the ring.
 */
export function createPage(out: Outbox, o: PageOptions) {
  let cursor = o.after;
  let lines = 0;
  let bytes = 0;
  let opened = false;
  let done = false;
  const later = (): void => {
    if (o.scheduler) o.scheduler.add(pump);
    else pump();
  };
  const pump: Job = () => {
    if (!out.open) return 0;
    out.sync();
    if (done) {
      if (out.queued === 0) out.end();
      return 0;
    }
    if (!out.hungry(later)) return 0;
    const { parts, add, size } = gather(out);
    if (!opened) {
      if (!add(enc.encode("["))) return 0;
      opened = true;
      bytes = 1;
    }
    let full = false;
    let finished = true;
    read: for (;;) {
      const batch = o.since(cursor, o.service, Math.min(BATCH, o.maxLines - lines));
      for (const l of batch) {
        const b = enc.encode(`${lines > 0 ? "," : ""}${JSON.stringify(l)}`);
        if (lines > 0 && bytes + b.byteLength + 1 > o.maxBytes) {
          full = true;
          break read;
        }
        if (!add(b)) {
          finished = false;
          break read;
        }
        bytes += b.byteLength;
        lines++;
        cursor = l.seq;
        if (lines >= o.maxLines) {
          full = true;
          break read;
        }
      }
      if (batch.length < BATCH) break;
    }
    if (full || finished) {
      const end = enc.encode("]");
      if (add(end)) done = true;
    }
    if (size() > 0) out.push(concat(parts, size()));
    return size();
  };
  return {
    start: later,
    pull(): void {
      out.sync();
      // The last bytes were taken: end the response.
      if (done && out.open && out.queued === 0) out.end();
      else later();
      out.wake();
    },
    tick(): void {
      if (!out.open) return;
      if (out.stalled()) out.end("the client read nothing for a whole heartbeat period");
      else later();
    },
    /** The client is gone: stop waiting. */
    stop(): void {
      out.budget.waiters.delete(later);
      o.scheduler?.delete(pump);
    },
    get done(): boolean {
      return done;
    },
  };
}

/** Handlers of a byte stream: set up with its queue, then pulled, then maybe cancelled. */
export interface StreamHandlers {
  start(queue: ByteQueue): void;
  pull(): void;
  cancel(): void;
}

/** Bytes sent to log clients between two full collections (see gc-hint.ts). */
const SENT_PER_COLLECTION = 128 * 1024 * 1024;
/**
 * Counts what all log streams send: a burst of clients that do not read
 * moved ~1 GB into their sockets' kernel buffers within a second, and the
 * stream machinery's garbage took RSS ~15 MB above where it settled.
 */
const sent = createGcHint(SENT_PER_COLLECTION, fullCollection);

/**
 * A ReadableStream whose queue is measured in bytes (high-water mark
 * `perClient`): `queued()` is what the server has not yet taken, so the
 * Outbox sees every byte still held for the client.
 */
export function byteStream(perClient: number, h: StreamHandlers): ReadableStream<Uint8Array> {
  const bytes: QueuingStrategy<Uint8Array> = {
    highWaterMark: perClient,
    size: (chunk) => chunk?.byteLength ?? 0,
  };
  const src = {
    start(ctrl: ReadableStreamDefaultController<Uint8Array>) {
      h.start({
        queued: () => Math.max(0, perClient - (ctrl.desiredSize ?? perClient)),
        enqueue: (b) => {
          ctrl.enqueue(b);
          sent(b.byteLength);
        },
        close: () => {
          try {
            ctrl.close();
          } catch {}
        },
        abort: (reason) => {
          try {
            ctrl.error(new Error(reason));
          } catch {}
        },
      });
    },
    pull() {
      // Never inside our own enqueue (which may call pull at once): after it.
      queueMicrotask(() => h.pull());
    },
    cancel() {
      h.cancel();
    },
  };
  return new ReadableStream<Uint8Array>(src, bytes);
}
