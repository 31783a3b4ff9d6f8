import { describe, expect, test } from "bun:test";
import { createRing, type LogLine, type LogRing } from "../supervisor/logs.ts";
import {
  type Budget,
  byteStream,
  createBudget,
  createEventCache,
  createFollower,
  createOutbox,
  createPage,
  createScheduler,
  HEARTBEAT,
  type Outbox,
} from "./follow.ts";

/** A queue the test drains by hand (the server taking bytes), recording the largest size. */
function fakeQueue() {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const q = {
    peak: 0,
    closed: false,
    aborted: null as string | null,
    /** Everything the server has taken so far. */
    taken: "",
    queued: () => size,
    enqueue(b: Uint8Array) {
      chunks.push(b);
      size += b.byteLength;
      q.peak = Math.max(q.peak, size);
    },
    close() {
      q.closed = true;
    },
    abort(reason: string) {
      q.aborted = reason;
      chunks.length = 0;
      size = 0;
    },
    /** The server takes one chunk (what Bun does when the socket can take more). */
    takeOne(): boolean {
      const c = chunks.shift();
      if (!c) return false;
      size -= c.byteLength;
      q.taken += new TextDecoder().decode(c);
      return true;
    },
  };
  return q;
}

/** A follower of `ring`, listening the way app.ts does (only its service's lines). */
function follower(out: Outbox, ring: LogRing, o: { after: number; service?: string }) {
  return createFollower(out, {
    ...o,
    since: (a, s, n) => ring.since(a, s).slice(0, n),
    subscribe: (fn) =>
      ring.subscribe((l) => (o.service === undefined || l.service === o.service) && fn(l)),
  });
}

const ids = (text: string) => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));

describe("outbox: bytes per client and in total", () => {
  test("fits under the client's bound and the budget; end gives the bytes back", () => {
    const budget = createBudget(100);
    const q = fakeQueue();
    const out = createOutbox(q, 40, budget);
    expect(out.fits(200)).toBe(false); // over the budget
    expect(out.fits(60)).toBe(true); // one oversized piece may go into an empty queue
    out.push(new Uint8Array(30));
    expect(out.fits(10)).toBe(true);
    expect(out.fits(11)).toBe(false);
    expect(budget.used).toBe(30);
    q.takeOne();
    out.sync();
    expect(out.queued).toBe(0);
    expect(budget.used).toBe(0);
    out.push(new Uint8Array(25));
    out.end("dropped");
    expect(q.aborted).toBe("dropped");
    expect(budget.used).toBe(0);
    expect(out.open).toBe(false);
  });

  test("stalled: bytes waited a whole period and none were taken", () => {
    const q = fakeQueue();
    const out = createOutbox(q, 1000, createBudget(10_000));
    out.push(new Uint8Array(10));
    expect(out.stalled()).toBe(false); // a new client gets one whole period
    expect(out.stalled()).toBe(true);
    out.push(new Uint8Array(10));
    q.takeOne();
    out.sync();
    expect(out.stalled()).toBe(false); // it took something
    q.takeOne();
    expect(out.stalled()).toBe(false); // nothing waits
  });
});

describe("SSE follower", () => {
  test("a backlog bigger than the queue arrives whole, in order, as the client reads", () => {
    const ring = createRing(2000);
    for (let i = 0; i < 500; i++) ring.push("web", "stdout", `line ${i} ${"x".repeat(200)}`);
    const q = fakeQueue();
    const budget = createBudget(1 << 20);
    const out = createOutbox(q, 4096, budget);
    const f = follower(out, ring, { after: 0 });
    f.start();
    for (let i = 0; i < 100; i++) ring.push("web", "stdout", `live ${i}`);
    while (q.takeOne()) f.pull();
    expect(ids(q.taken)).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(q.peak).toBeLessThanOrEqual(4096);
    expect(f.live).toBe(true);
    // Caught up: new lines go straight out.
    ring.push("web", "stderr", "after");
    q.takeOne();
    expect(q.taken).toContain('"text":"after"');
  });

  test("a client that never reads holds at most its bound, then is dropped", () => {
    const ring = createRing(100);
    const budget = createBudget(1 << 20);
    const q = fakeQueue();
    const out = createOutbox(q, 8192, budget);
    const f = follower(out, ring, { after: 0 });
    f.start();
    // A flood of control characters: 1,000 chars become 6,000 bytes of JSON.
    const ctl = "\u0001".repeat(1000);
    for (let i = 0; i < 5000; i++) ring.push("flood", "stdout", ctl);
    expect(q.peak).toBeLessThanOrEqual(8192);
    expect(budget.used).toBe(q.queued());
    f.tick(); // first period: grace
    expect(q.aborted).toBeNull();
    f.tick();
    expect(q.aborted).toContain("read nothing");
    expect(budget.used).toBe(0);
  });

  test("bytes are counted after encoding (control characters are 6 bytes in JSON)", () => {
    const ring = createRing(10);
    const q = fakeQueue();
    const out = createOutbox(q, 1 << 20, createBudget(1 << 20));
    const f = follower(out, ring, { after: 0 });
    f.start();
    const before = q.queued();
    ring.push("s", "stdout", "\u0000".repeat(1000));
    expect(q.queued() - before).toBeGreaterThan(6000);
  });

  test("one service's stream has only its lines, in order, none twice", () => {
    const ring = createRing(5000);
    const q = fakeQueue();
    const out = createOutbox(q, 600, createBudget(1 << 20));
    for (let i = 0; i < 5; i++) ring.push("web", "stdout", `w${i}`);
    const f = follower(out, ring, { after: 2, service: "web" });
    f.start();
    for (let i = 0; i < 200; i++) {
      ring.push("db", "stdout", `not mine ${i}`);
      ring.push("web", "stdout", `more ${i}`);
      if (i % 7 === 0) q.takeOne() && f.pull(); // a slow reader
    }
    while (q.takeOne()) f.pull();
    expect(q.taken).not.toContain("not mine");
    expect(q.taken).not.toContain('"text":"w1"');
    expect(q.taken).toContain('"text":"w2"');
    expect(q.taken).not.toContain("event: gap");
    const got = ids(q.taken);
    expect(got).toEqual([...new Set(got)].sort((a, b) => a - b));
    expect(got.length).toBe(203);
  });

  test("all services: a gap when the ring dropped lines the client had not read", () => {
    const ring = createRing(50);
    const q = fakeQueue();
    const out = createOutbox(q, 600, createBudget(1 << 20));
    for (let i = 0; i < 5; i++) ring.push("web", "stdout", `w${i}`);
    const f = follower(out, ring, { after: 2 });
    f.start();
    // The client does not read while 200 lines go by (the ring keeps 50).
    for (let i = 0; i < 200; i++) ring.push("web", "stdout", `more ${i}`);
    while (q.takeOne()) f.pull();
    expect(q.taken).toContain('"text":"w2"');
    const gaps = [...q.taken.matchAll(/event: gap\ndata: \{"missed":(\d+)\}/g)];
    const got = ids(q.taken);
    expect(gaps.length).toBeGreaterThan(0);
    // Every seq after 2 is either delivered or counted as missed.
    expect(got.length + gaps.reduce((n, m) => n + Number(m[1]), 0)).toBe(203);
    expect(got).toEqual([...got].sort((a, b) => a - b));
    expect(got.at(-1)).toBe(205);
  });

  test("the total budget bounds all clients together; a freed budget lets others go on", () => {
    const ring = createRing(1000);
    for (let i = 0; i < 200; i++) ring.push("web", "stdout", "y".repeat(100));
    const budget: Budget = createBudget(6000);
    const clients = Array.from({ length: 5 }, () => {
      const q = fakeQueue();
      const out = createOutbox(q, 4000, budget);
      const f = follower(out, ring, { after: 0 });
      f.start();
      return { q, out, f };
    });
    expect(budget.used).toBeLessThanOrEqual(6000 + 5 * 20); // + the "retry:" line each
    const waiting = clients.filter((c) => c.q.queued() < 100);
    expect(waiting.length).toBeGreaterThan(0);
    // The first clients never read: they are dropped, and the waiting ones (which read) go on.
    const drain = () => {
      for (const c of waiting) while (c.q.takeOne()) c.f.pull();
    };
    drain();
    for (let round = 0; round < 2; round++) {
      for (const c of clients) c.f.tick();
      drain();
    }
    const w = waiting[0] as (typeof clients)[number];
    expect(w.q.aborted).toBeNull();
    expect(clients.filter((c) => c.q.aborted !== null).length).toBe(5 - waiting.length);
    expect(ids(w.q.taken).length).toBe(200);
  });

  test("heartbeats go to a reading client", () => {
    const q = fakeQueue();
    const out = createOutbox(q, 1000, createBudget(10_000));
    const f = follower(out, createRing(10), { after: 0 });
    f.start();
    q.takeOne();
    f.tick();
    q.takeOne();
    expect(q.taken).toContain(new TextDecoder().decode(HEARTBEAT));
    expect(q.aborted).toBeNull();
  });
});

describe("JSON log pages", () => {
  const lines = (n: number, text = (i: number) => `l${i}`) => {
    const ring = createRing(5000);
    for (let i = 1; i <= n; i++) ring.push(i % 2 ? "web" : "db", "stdout", text(i));
    return ring;
  };
  const read = (
    o: Partial<Parameters<typeof createPage>[1]> & Pick<Parameters<typeof createPage>[1], "since">,
  ) => {
    const q = fakeQueue();
    const out = createOutbox(q, 1024, createBudget(1 << 20));
    const p = createPage(out, { after: 0, maxLines: 1000, maxBytes: 1 << 20, ...o });
    p.start();
    for (let i = 0; i < 10_000 && !q.closed; i++) {
      q.takeOne();
      p.pull();
    }
    expect(q.closed).toBe(true);
    expect(q.peak).toBeLessThanOrEqual(1024);
    return JSON.parse(q.taken) as LogLine[];
  };

  test("at most maxLines lines; the next page starts after the last seq", () => {
    const ring = lines(30);
    const first = read({ since: (a, s, n) => ring.since(a, s).slice(0, n), maxLines: 10 });
    expect(first.map((l) => l.seq)).toEqual(Array.from({ length: 10 }, (_, i) => i + 1));
    const next = read({
      since: (a, s, n) => ring.since(a, s).slice(0, n),
      maxLines: 10,
      after: 10,
    });
    expect(next[0]?.seq).toBe(11);
    expect(read({ since: (a, s, n) => ring.since(a, s).slice(0, n), after: 30 })).toEqual([]);
  });

  test("at most maxBytes of JSON (but always one line); one service only", () => {
    const ring = lines(100, () => "\u0002".repeat(100)); // 600 bytes of JSON text each
    const page = read({ since: (a, s, n) => ring.since(a, s).slice(0, n), maxBytes: 3000 });
    expect(page.length).toBeGreaterThan(0);
    expect(JSON.stringify(page).length).toBeLessThanOrEqual(3000);
    expect(read({ since: (a, s, n) => ring.since(a, s).slice(0, n), maxBytes: 10 }).length).toBe(1);
    const web = read({ since: (a, s, n) => ring.since(a, s).slice(0, n), service: "web" });
    expect(web.length).toBe(50);
    expect(web.every((l) => l.service === "web")).toBe(true);
  });

  test("a page client that never reads is dropped after a whole period", () => {
    const ring = lines(500);
    const q = fakeQueue();
    const budget = createBudget(1 << 20);
    const out = createOutbox(q, 1024, budget);
    const p = createPage(out, {
      after: 0,
      since: (a, s, n) => ring.since(a, s).slice(0, n),
      maxLines: 1000,
      maxBytes: 1 << 20,
    });
    p.start();
    expect(q.peak).toBeLessThanOrEqual(1024);
    p.tick();
    p.tick();
    expect(q.aborted).not.toBeNull();
    expect(budget.used).toBe(0);
  });
});

describe("byteStream", () => {
  test("its queue is measured in bytes: queued() is what the reader has not taken", async () => {
    let queue: Parameters<Parameters<typeof byteStream>[1]["start"]>[0] | undefined;
    let pulls = 0;
    let cancelled = false;
    const s = byteStream(1000, {
      start: (q) => {
        queue = q;
      },
      pull: () => {
        pulls++;
      },
      cancel: () => {
        cancelled = true;
      },
    });
    const q = queue as NonNullable<typeof queue>;
    q.enqueue(new Uint8Array(300));
    q.enqueue(new Uint8Array(900));
    expect(q.queued()).toBe(1200);
    const r = s.getReader();
    await r.read();
    expect(q.queued()).toBe(900);
    await r.read();
    expect(q.queued()).toBe(0);
    expect(pulls).toBeGreaterThan(0);
    q.abort("gone");
    expect(q.queued()).toBe(0);
    await r.cancel().catch(() => {});
    const t = byteStream(10, { start: () => {}, pull: () => {}, cancel: () => (cancelled = true) });
    await t.cancel();
    expect(cancelled).toBe(true);
  });
});

describe("scheduler and event cache", () => {
  test("catch-up work runs in turns of about `quota` bytes, deferred", () => {
    const turns: (() => void)[] = [];
    const s = createScheduler(100, (run) => turns.push(run));
    const ran: string[] = [];
    const job = (name: string, bytes: number) => () => {
      ran.push(name);
      return bytes;
    };
    const a = job("a", 60);
    s.add(a);
    s.add(a); // once per turn, however often asked
    s.add(job("b", 60));
    s.add(job("c", 60));
    expect(ran).toEqual([]); // nothing runs inside the caller
    expect(turns.length).toBe(1);
    (turns.shift() as () => void)();
    expect(ran).toEqual(["a", "b"]); // 120 bytes ≥ 100: the turn ends
    expect(turns.length).toBe(1);
    (turns.shift() as () => void)();
    expect(ran).toEqual(["a", "b", "c"]);
    expect(s.size).toBe(0);
    s.add(() => {
      throw new Error("broken");
    });
    s.add(job("d", 1));
    (turns.shift() as () => void)();
    expect(ran.at(-1)).toBe("d"); // a failing job does not stop the others
  });

  test("followers share the encoding of a line; the cache is bounded in bytes", () => {
    const ring = createRing(100);
    const cache = createEventCache(10_000);
    const a = ring.push("web", "stdout", "x".repeat(4000));
    expect(cache.encode(a)).toBe(cache.encode(a));
    for (let i = 0; i < 10; i++) cache.encode(ring.push("web", "stdout", "y".repeat(4000)));
    expect(cache.bytes).toBeLessThanOrEqual(10_000);
    expect(new TextDecoder().decode(cache.encode(a))).toBe(
      `id: ${a.seq}\nevent: log\ndata: ${JSON.stringify(a)}\n\n`,
    );
  });
});
