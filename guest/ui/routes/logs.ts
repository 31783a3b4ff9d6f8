/**
 * Log output: a JSON page of lines after a sequence number, or a live SSE
 * stream (resumed from Last-Event-ID). The bytes go through ../follow.ts:
 * counted after encoding, per client and in total, so clients that do not
 * read cannot make PID 1 buffer without bound; a client that takes nothing
 * for a heartbeat period is dropped and its connection closed soon.
 */
import { Hono } from "hono";
import type { LogLine } from "../../supervisor/logs.ts";
import {
  type Budget,
  type ByteQueue,
  byteStream,
  createBudget,
  createEventCache,
  createFollower,
  createOutbox,
  createPage,
  createScheduler,
  type Outbox,
} from "../follow.ts";
import type { C, Responder, UiApp } from "../http.ts";
import { createLogHub } from "../log-hub.ts";
import type { UiSource } from "../source.ts";

/** Most lines of one JSON log page (and the default of `?limit=`). */
export const LOG_PAGE_LINES = 1000;

/** The log clients' limits (each has a default). */
export interface LogOptions {
  /** Most concurrent SSE log followers (default 256). */
  maxFollowers?: number;
  /** Most JSON log pages being sent at once (default 64). */
  maxPages?: number;
  /**
   * SSE heartbeat period (default 15 s; Bun's idleTimeout is 255 s at most); a log
   * client that takes nothing for a whole period while bytes wait for it is dropped.
   */
  heartbeatMs?: number;
  /** Most bytes queued for one log client, counted after encoding (default 32 KiB). */
  logClientBytes?: number;
  /** Most bytes queued for all log clients together (default 4 MiB). */
  logTotalBytes?: number;
  /** Most bytes of one JSON log page (default 256 KiB). */
  logPageBytes?: number;
}

const PAGE_HEADERS = { "Content-Type": "application/json; charset=utf-8" };
/** No proxy may buffer (X-Accel-Buffering) or keep an SSE stream. */
const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-store",
  "X-Accel-Buffering": "no",
};

/** What a log request asks for: a stream after a seq, a page of `limit` lines, or an error. */
export type LogQuery =
  | { stream: true; after: number }
  | { stream: false; after: number; limit: number }
  | { error: string };

/**
 * Pure: a log request's parameters. Last-Event-ID (an SSE reconnect) wins
 * over ?after=; an `after` that is not a whole number ≥ 0 means from the
 * start. `limit` counts only for a page: 1 to LOG_PAGE_LINES, default all.
 */
export function parseLogQuery(q: {
  accept?: string;
  lastEventId?: string;
  after?: string;
  limit?: string;
}): LogQuery {
  const n = Number(q.lastEventId ?? q.after ?? 0);
  const after = Number.isSafeInteger(n) && n >= 0 ? n : 0;
  if ((q.accept ?? "").includes("text/event-stream")) return { stream: true, after };
  const limit = q.limit === undefined ? LOG_PAGE_LINES : Number(q.limit);
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > LOG_PAGE_LINES)
    return { error: `limit must be a whole number from 1 to ${LOG_PAGE_LINES}` };
  return { stream: false, after, limit };
}

/** What feeds one log response: a follower or a page (follow.ts). */
interface Producer {
  start(): void;
  pull(): void;
  tick(): void;
  stop(): void;
}

/** Shared by all log responses of one app. */
interface Shared {
  perClient: number;
  budget: Budget;
  heartbeatMs: number;
}

/**
 * One log response's body: an outbox on a byte stream, fed by `make`'s
 * producer, with a heartbeat. `release` (the client's slot) runs once, when
 * the client ends for whatever reason.
 */
function logBody(c: C, k: Shared, release: () => void, make: (out: Outbox) => Producer) {
  let done = false;
  let p: Producer | undefined;
  let out: Outbox | undefined;
  let beat: ReturnType<typeof setInterval> | undefined;
  const cleanup = () => {
    if (done) return;
    done = true;
    release();
    p?.stop();
    clearInterval(beat);
  };
  return byteStream(k.perClient, {
    start(queue) {
      const o = createOutbox(dropping(c, queue), k.perClient, k.budget, cleanup);
      const pr = make(o);
      out = o;
      p = pr;
      pr.start();
      if (o.open) beat = setInterval(() => pr.tick(), k.heartbeatMs);
      c.req.raw.signal?.addEventListener("abort", () => o.end(null));
    },
    pull: () => p?.pull(),
    cancel() {
      out?.end(null);
    },
  });
}

/** A queue whose client's connection is closed soon when it is dropped (not after Bun's 255 s). */
function dropping(c: C, queue: ByteQueue): ByteQueue {
  return {
    ...queue,
    abort(reason) {
      queue.abort(reason);
      try {
        c.env?.timeout?.(c.req.raw, 1);
      } catch {}
    },
  };
}

/** GET /api/v1/logs and /api/v1/services/:name/logs. */
export function logRoutes(source: UiSource, ui: Responder, o: LogOptions = {}) {
  const maxFollowers = o.maxFollowers ?? 256;
  const maxPages = o.maxPages ?? 64;
  const pageBytes = o.logPageBytes ?? 256 * 1024;
  const k: Shared = {
    perClient: o.logClientBytes ?? 32 * 1024,
    budget: createBudget(o.logTotalBytes ?? 4 * 1024 * 1024),
    heartbeatMs: o.heartbeatMs ?? 15_000,
  };
  let followers = 0;
  let pages = 0;
  // Followers reading the same lines (live ones, and ones catching up together) share their encoding.
  const events = createEventCache(1024 * 1024);
  // Catch-up work in turns of 256 KiB, yielding between them: other requests are never held up long.
  const scheduler = createScheduler(256 * 1024, (run) => setImmediate(run));
  const hub = createLogHub((fn) => source.logs.subscribe(fn));
  const since = (a: number, s: string | undefined, n: number) => source.logs.since(a, s, n);
  const encode = (l: LogLine) => events.encode(l);

  const logs = (c: C, service: string | undefined) => {
    if (service !== undefined && !source.service(service))
      return ui.refuse(c, 404, `no service "${service}"`);
    const q = parseLogQuery({
      accept: c.req.header("accept"),
      lastEventId: c.req.header("last-event-id"),
      after: c.req.query("after"),
      limit: c.req.query("limit"),
    });
    if ("error" in q) return ui.refuse(c, 400, q.error);
    if (!q.stream) {
      if (pages >= maxPages) return ui.refuse(c, 503, `at most ${maxPages} log pages at once`);
      pages++;
      const page = (out: Outbox) =>
        createPage(out, {
          after: q.after,
          service,
          since,
          maxLines: q.limit,
          maxBytes: pageBytes,
          scheduler,
        });
      return new Response(
        logBody(c, k, () => pages--, page),
        { headers: PAGE_HEADERS },
      );
    }
    if (followers >= maxFollowers)
      return ui.refuse(c, 503, `at most ${maxFollowers} log followers`);
    followers++;
    const follower = (out: Outbox) =>
      createFollower(out, {
        after: q.after,
        service,
        since,
        subscribe: (fn) => hub.listen(service, fn),
        encode,
        scheduler,
      });
    return new Response(
      logBody(c, k, () => followers--, follower),
      { headers: SSE_HEADERS },
    );
  };
  const app = new Hono<UiApp>();
  app.get("/api/v1/logs", (c) => logs(c, undefined));
  app.get("/api/v1/services/:name/logs", (c) => logs(c, c.req.param("name")));
  return app;
}
