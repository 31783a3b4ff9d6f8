import { describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createRing,
  formatZinit,
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
  test("rotates by size and keeps `keep` generations", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-rot-"));
    try {
      const errors: string[] = [];
      const f = rotatingFile(join(dir, "svc.log"), 100, 2, (m) => errors.push(m));
      for (let i = 0; i < 30; i++) f.write(`line ${String(i).padStart(2, "0")} ${"x".repeat(10)}`);
      expect(readdirSync(dir).sort()).toEqual(["svc.log", "svc.log.1", "svc.log.2"]);
      const cur = readFileSync(join(dir, "svc.log"), "utf8");
      expect(cur.length).toBeLessThanOrEqual(100);
      expect(cur).toContain("line 29");
      expect(readFileSync(join(dir, "svc.log.1"), "utf8")).not.toContain("line 29");
      expect(errors).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a write failure is reported once and never thrown", () => {
    const errors: string[] = [];
    const f = rotatingFile("/proc/no-such-dir/x.log", 100, 2, (m) => errors.push(m));
    f.write("a");
    f.write("b");
    expect(errors).toHaveLength(1);
  });
});
