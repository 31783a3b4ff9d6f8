import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createRing,
  type FollowItem,
  follow,
  formatZinit,
  lineQueue,
  lineSplitter,
  MAX_LINE,
  rotatingFile,
  rotationPlan,
} from "./logs.ts";

describe("log ring", () => {
  test("keeps the last N lines with increasing seq and filters by service", () => {
    const ring = createRing(3, () => 42);
    for (const t of ["a", "b", "c", "d"]) ring.push(t === "b" ? "db" : "web", "stdout", t);
    expect(ring.since(0).map((l) => l.text)).toEqual(["b", "c", "d"]);
    expect(ring.since(2).map((l) => l.seq)).toEqual([3, 4]);
    expect(ring.since(0, "db").map((l) => l.text)).toEqual(["b"]);
  });

  test("fair eviction: a flooding service evicts its own lines, not a quiet one's", () => {
    const ring = createRing(10);
    for (const t of ["q1", "q2", "q3"]) ring.push("quiet", "stdout", t);
    for (let i = 0; i < 1000; i++) ring.push("flood", "stdout", `f${i}`);
    expect(ring.since(0, "quiet").map((l) => l.text)).toEqual(["q1", "q2", "q3"]);
    expect(ring.since(0, "flood").map((l) => l.text)).toEqual([
      "f993",
      "f994",
      "f995",
      "f996",
      "f997",
      "f998",
      "f999",
    ]);
    expect(ring.held()).toBe(10);
    // seq order over all services is kept
    const all = ring.since(0);
    expect(all.map((l) => l.text).slice(0, 4)).toEqual(["q1", "q2", "q3", "f993"]);
    expect(all.map((l) => l.seq)).toEqual([...all.map((l) => l.seq)].sort((a, b) => a - b));
  });

  test("fair eviction: two floods share the ring; the quietest keeps everything", () => {
    const ring = createRing(9);
    ring.push("q", "stdout", "only");
    for (let i = 0; i < 500; i++) {
      ring.push("a", "stdout", `a${i}`);
      ring.push("b", "stdout", `b${i}`);
    }
    expect(ring.held("q")).toBe(1);
    expect(ring.held("a")).toBe(4);
    expect(ring.held("b")).toBe(4);
    expect(ring.since(0, "b").at(-1)?.text).toBe("b499");
  });

  test.each([
    ["one service floods", (r: (n: number) => number) => (r(4) === 0 ? r(6) : 0)],
    ["even (ties at the top)", (r: (n: number) => number) => r(3)],
  ])("fair eviction matches a plain model over random pushes: %s", (_, pick) => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const ring = createRing(20);
    const model = new Map<string, number[]>(); // service → seqs held
    for (let seq = 1; seq <= 5000; seq++) {
      const svc = `s${pick(rand)}`;
      ring.push(svc, "stdout", "x");
      model.set(svc, [...(model.get(svc) ?? []), seq]);
      if ([...model.values()].reduce((a, l) => a + l.length, 0) > 20) {
        let victim = "";
        for (const [name, l] of model) {
          const v = model.get(victim);
          if (
            l.length > 0 &&
            (!v ||
              l.length > v.length ||
              (l.length === v.length && (l[0] as number) < (v[0] as number)))
          )
            victim = name;
        }
        model.get(victim)?.shift();
      }
      const want = [...model.values()].flat().sort((a, b) => a - b);
      expect(ring.since(0).map((l) => l.seq)).toEqual(want);
    }
  });

  test("a service alone uses the whole ring", () => {
    const ring = createRing(5);
    for (let i = 0; i < 12; i++) ring.push("web", "stdout", `${i}`);
    expect(ring.since(0).map((l) => l.text)).toEqual(["7", "8", "9", "10", "11"]);
  });

  test("bounded in characters too: the service holding the most text leaves first", () => {
    const ring = createRing(1000, Date.now, 10_000);
    ring.push("quiet", "stdout", "small");
    for (let i = 0; i < 100; i++) ring.push("big", "stdout", "x".repeat(1000));
    expect(ring.held("quiet")).toBe(1);
    expect(ring.held("big")).toBeLessThan(10);
    expect(ring.held("big")).toBeGreaterThan(5);
  });

  test("read(): by position, with the count of evicted lines in between", () => {
    const ring = createRing(4);
    for (let i = 1; i <= 6; i++) ring.push("a", "stdout", `a${i}`); // holds a3..a6
    expect(ring.start("a")).toBe(2);
    expect(ring.end("a")).toBe(6);
    const r = ring.read("a", 0, 2);
    expect(r).toMatchObject({ dropped: 2, next: 4 });
    expect(r.lines.map((l) => l.text)).toEqual(["a3", "a4"]);
    expect(ring.read("a", 4, 10).lines.map((l) => l.text)).toEqual(["a5", "a6"]);
    expect(ring.read("a", 6, 10)).toEqual({ lines: [], dropped: 0, next: 6 });
    // all services: positions are seqs
    const g = ring.read(undefined, 1, 1);
    expect(g).toMatchObject({ dropped: 1, next: 3 });
    expect(ring.read(undefined, 3, 10, 10, 4).lines.map((l) => l.seq)).toEqual([4]);
    expect(ring.read("nobody", 0, 10)).toEqual({ lines: [], dropped: 0, next: 0 });
  });

  test("read(): stops at about maxChars but always returns a line", () => {
    const ring = createRing(10);
    for (let i = 0; i < 5; i++) ring.push("a", "stdout", "x".repeat(100));
    expect(ring.read("a", 0, 10, 50).lines).toHaveLength(1);
    expect(ring.read("a", 0, 10, 150).lines).toHaveLength(2);
  });

  test("subscribers get new lines; a throwing subscriber does not stop others", () => {
    const ring = createRing();
    const got: string[] = [];
    ring.subscribe(() => {
      throw new Error("boom");
    });
    const off = ring.subscribe((l) => got.push(formatZinit(l)));
    ring.push("redis", "stderr", "oops");
    off();
    ring.push("redis", "stdout", "after");
    expect(got).toEqual(["[-] redis: oops"]);
  });
});

describe("line splitter", () => {
  test("joins chunks, splits lines, strips CR, flushes the tail at end", () => {
    const lines: string[] = [];
    const s = lineSplitter((l) => lines.push(l));
    const enc = new TextEncoder();
    s.push(enc.encode("he"));
    s.push(enc.encode("llo\r\nwor"));
    s.push(enc.encode("ld\nlast"));
    s.end();
    expect(lines).toEqual(["hello", "world", "last"]);
  });

  test("a line without newline longer than MAX_LINE is cut, not buffered forever", () => {
    const lines: string[] = [];
    const s = lineSplitter((l) => lines.push(l));
    s.push(new TextEncoder().encode("x".repeat(MAX_LINE + 10)));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toHaveLength(MAX_LINE);
  });

  test("push() returns how many lines the chunk ended (what the pump's pacer charges for)", () => {
    const lines: string[] = [];
    const s = lineSplitter((l) => lines.push(l));
    const enc = new TextEncoder();
    expect(s.push(enc.encode("a\nb\nc"))).toBe(2);
    expect(s.push(enc.encode("c"))).toBe(0);
    expect(s.push(enc.encode("\n"))).toBe(1);
    expect(s.push(enc.encode("x".repeat(MAX_LINE + 1)))).toBe(1);
    expect(lines).toEqual(["a", "b", "cc", "x".repeat(MAX_LINE)]);
  });

  test("multi-byte characters split across chunks survive", () => {
    const lines: string[] = [];
    const s = lineSplitter((l) => lines.push(l));
    const b = new TextEncoder().encode("é\n");
    s.push(b.subarray(0, 1));
    s.push(b.subarray(1));
    expect(lines).toEqual(["é"]);
  });
});

describe("rotation plan", () => {
  test("shifts generations oldest first and drops the last", () => {
    expect(rotationPlan("/var/log/x.log", 3)).toEqual([
      ["/var/log/x.log.2", "/var/log/x.log.3"],
      ["/var/log/x.log.1", "/var/log/x.log.2"],
      ["/var/log/x.log", "/var/log/x.log.1"],
    ]);
  });
});

describe("rotating log file", () => {
  test("rotates by size and keeps `keep` generations", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-rot-"));
    try {
      const errors: string[] = [];
      const f = rotatingFile(join(dir, "svc.log"), 100, 2, (m) => errors.push(m));
      for (let i = 0; i < 30; i++) {
        f.write(`line ${String(i).padStart(2, "0")} ${"x".repeat(10)}`);
        if (i % 7 === 0) await f.flush();
      }
      await f.flush();
      expect(readdirSync(dir).sort()).toEqual(["svc.log", "svc.log.1", "svc.log.2"]);
      const cur = readFileSync(join(dir, "svc.log"), "utf8");
      expect(cur.length).toBeLessThanOrEqual(100);
      expect(cur).toContain("line 29");
      expect(readFileSync(join(dir, "svc.log.1"), "utf8")).not.toContain("line 29");
      for (const n of ["svc.log", "svc.log.1", "svc.log.2"])
        expect(readFileSync(join(dir, n), "utf8")).toMatch(/^(line \d\d x{10}\n)+$/);
      expect(errors).toEqual([]);
      expect(f.dropped).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a write failure is reported once and never thrown", async () => {
    const errors: string[] = [];
    const f = rotatingFile("/proc/no-such-dir/x.log", 100, 2, (m) => errors.push(m));
    f.write("a");
    await f.flush();
    f.write("b");
    await f.flush();
    expect(errors).toHaveLength(1);
    expect(f.dropped).toBe(2);
  });

  test("write() returns at once: a burst beyond the buffer is dropped, counted and marked", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-rot-"));
    try {
      const path = join(dir, "svc.log");
      const f = rotatingFile(path, 1 << 20, 2, () => {}, { buffer: 80 });
      // Nothing can be written before the writer gets the event loop: 10 fit, 90 are dropped.
      for (let i = 0; i < 100; i++) f.write(`l${String(i).padStart(7, "0")}`);
      expect(f.dropped).toBe(90);
      await f.flush();
      f.write("after");
      await f.flush();
      const lines = readFileSync(path, "utf8").split("\n");
      expect(lines.slice(0, 10)).toEqual(Array.from({ length: 10 }, (_, i) => `l000000${i}`));
      expect(lines.slice(10)).toEqual(["[-] zinit: 90 lines dropped", "after", ""]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the marker is written when the writer catches up even if no line follows", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-rot-"));
    try {
      const path = join(dir, "svc.log");
      const f = rotatingFile(path, 1 << 20, 2, () => {}, { buffer: 20, marker: (n) => `M${n}` });
      for (let i = 0; i < 5; i++) f.write("0123456789");
      await f.flush();
      expect(readFileSync(path, "utf8")).toBe("0123456789\n0123456789\nM3\n");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a FIFO (or any non-regular file) is refused, never waited on", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-rot-"));
    try {
      const path = join(dir, "fifo.log");
      expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
      const errors: string[] = [];
      const f = rotatingFile(path, 1 << 20, 2, (m) => errors.push(m));
      f.write("x");
      await f.flush();
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBe(`${path}: not a regular file`);
      expect(f.dropped).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("line queue", () => {
  test("bounded in characters; drops are counted and marked before the next line that fits", () => {
    const q = lineQueue(10, (n) => `D${n}`);
    expect(q.push("abcd")).toBe(true);
    expect(q.push("efgh")).toBe(true);
    expect(q.push("ijkl")).toBe(false);
    expect(q.push("m")).toBe(false); // the marker "D1" and "m" would not fit either
    expect(q.lost).toBe(2);
    expect(q.take(5)).toEqual(["abcd"]);
    expect(q.push("n")).toBe(true);
    expect(q.take(100)).toEqual(["efgh", "D2", "n"]);
    expect(q.pending).toBe(false);
    expect(q.chars).toBe(0);
  });

  test("take() gives at least one line; a failed write and clear() count lines, not markers", () => {
    const q = lineQueue(100, (n) => `D${n}`);
    q.push("0123456789");
    expect(q.take(3)).toEqual(["0123456789"]);
    q.failed();
    expect(q.pending).toBe(true);
    expect(q.lost).toBe(1);
    q.push("a");
    q.push("b");
    expect(q.take(100)).toEqual(["D1", "a", "b"]);
    q.failed();
    expect(q.lost).toBe(3);
    q.push("c");
    q.clear();
    expect(q.lost).toBe(4);
    expect(q.take(100)).toEqual(["D4"]);
    expect(q.pending).toBe(false);
  });
});

const texts = (items: FollowItem[]) =>
  items.map((i) => ("line" in i ? i.line.text : `dropped ${i.dropped}`));

describe("log follower", () => {
  test("history then live lines; a snapshot follower is done after the history", () => {
    const ring = createRing(10);
    ring.push("a", "stdout", "1");
    ring.push("b", "stdout", "x");
    ring.push("a", "stdout", "2");
    const snap = follow(ring, "a", { history: true, live: false });
    const live = follow(ring, "a", { history: true, live: true });
    const fresh = follow(ring, undefined, { history: false, live: true });
    ring.push("a", "stdout", "3");
    expect(texts(snap.take(10, 1000))).toEqual(["1", "2"]);
    expect(snap.take(10, 1000)).toEqual([]);
    expect(snap.done).toBe(true);
    expect(texts(live.take(10, 1000))).toEqual(["1", "2"]);
    expect(texts(live.take(10, 1000))).toEqual(["3"]);
    expect(live.done).toBe(false);
    expect(texts(fresh.take(10, 1000))).toEqual(["3"]);
    expect(fresh.take(10, 1000)).toEqual([]);
  });

  test("a slow follower skips what the ring evicted, with one dropped item", () => {
    const ring = createRing(5);
    const f = follow(ring, "a", { history: false, live: true });
    for (let i = 1; i <= 3; i++) ring.push("a", "stdout", `${i}`);
    expect(texts(f.take(2, 1000))).toEqual(["1", "2"]);
    for (let i = 4; i <= 20; i++) ring.push("a", "stdout", `${i}`);
    expect(texts(f.take(100, 1000))).toEqual(["dropped 13", "16", "17", "18", "19", "20"]);
    const g = follow(ring, undefined, { history: false, live: true });
    for (let i = 21; i <= 30; i++) ring.push("a", "stdout", `${i}`);
    expect(texts(g.take(100, 1000))).toEqual(["dropped 5", "26", "27", "28", "29", "30"]);
  });

  test("history: holes left by fair eviction are not announced, evictions while reading are", () => {
    const ring = createRing(6);
    ring.push("quiet", "stdout", "q");
    for (let i = 1; i <= 20; i++) ring.push("flood", "stdout", `${i}`);
    // The ring holds q and 16..20: seqs 2..16 were evicted before anyone followed.
    const f = follow(ring, undefined, { history: true, live: true });
    expect(texts(f.take(2, 1000))).toEqual(["q", "16"]);
    for (let i = 21; i <= 26; i++) ring.push("flood", "stdout", `${i}`); // evicts 17..21
    expect(texts(f.take(100, 1000))).toEqual(["dropped 5", "22", "23", "24", "25", "26"]);
  });
});
