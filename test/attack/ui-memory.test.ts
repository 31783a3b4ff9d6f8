/**
 * Attack: log clients that never read, against the UI in a process of its
 * own (test/attack/ui-server.ts: the real app, Bun.serve and supervisor, a
 * service logging lines of control characters, which JSON escapes to six
 * bytes each). The clients are raw TCP sockets that send a GET and then
 * never read. The defences: bytes are counted after encoding, per client
 * and in total; a client whose queue is full gets nothing more, and one that
 * stalls is dropped; catch-up work runs in turns that yield to other
 * requests (guest/ui/follow.ts); PID 1 takes a service's output in no faster
 * than 1 MiB/s once its burst is spent, so a flood waits in its own write(2)
 * (guest/supervisor/pace.ts); and a full garbage collection follows every
 * 8 MiB of output taken in and every 128 MiB sent to log clients
 * (guest/supervisor/gc-hint.ts). So the server's RSS (VmRSS, sampled all
 * along) stays under 128 MB and /health keeps answering. Prints the numbers.
 *
 * Two rings: one full of control-character lines and quiet (256 silent
 * followers and 10 silent JSON requests), and one with a service flooding as
 * fast as it can (256 silent followers). No password, loopback clients.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import type { Subprocess } from "bun";

const LIMIT_MB = 128;
/** Beyond this the attack has clearly won: stop before it eats the machine. */
const GIVE_UP_MB = 1024;
const ATTACK_S = 20;

let server: Subprocess | null = null;
let sockets: Socket[] = [];

/** Stops the server: SIGTERM (it stops its services), SIGKILL if it does not go within 5 s. */
async function stopServer() {
  for (const s of sockets) s.destroy();
  sockets = [];
  const p = server;
  server = null;
  if (!p) return;
  p.kill("SIGTERM");
  const killed = await Promise.race([p.exited.then(() => true), Bun.sleep(5000).then(() => false)]);
  if (!killed) {
    p.kill("SIGKILL");
    await p.exited;
  }
}

afterEach(stopServer, 20_000);

function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

async function startServer(mode: "flood" | "ring"): Promise<{ pid: number; port: number }> {
  const p = Bun.spawn([process.execPath, join(import.meta.dir, "ui-server.ts"), mode], {
    stdin: "pipe", // it exits when this closes: it never outlives the test
    stdout: "pipe",
    stderr: "pipe",
  });
  server = p;
  // Keep the tail of its log (for a failure message); never let the pipe fill up.
  let log = "";
  (async () => {
    for await (const chunk of p.stderr as ReadableStream<Uint8Array>)
      log = (log + new TextDecoder().decode(chunk)).slice(-4000);
  })().catch(() => {});
  const reader = (p.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  // The baseline is the server with a full ring, without clients: it says `ready` then.
  const deadline = Date.now() + 60_000;
  let next = reader.read();
  while (!/listening (\d+)/.test(text) || !/\bready\b/.test(text)) {
    if (Date.now() > deadline) throw new Error(`ui-server not ready: ${text}${log}`);
    const r = await Promise.race([next, Bun.sleep(1000).then(() => null)]);
    if (r === null) continue;
    if (r.done) throw new Error(`ui-server exited (${await p.exited}): ${text}${log}`);
    text += new TextDecoder().decode(r.value);
    if (!/\bready\b/.test(text)) next = reader.read();
  }
  reader.releaseLock();
  const port = Number(/listening (\d+)/.exec(text)?.[1]);
  await Bun.sleep(1000);
  return { pid: p.pid, port };
}

/** A client that sends one request and then never reads a byte. */
function silentClient(port: number, path: string, accept: string): Socket {
  const s = connect(port, "127.0.0.1", () => {
    s.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ${accept}\r\n\r\n`);
  });
  s.pause();
  s.on("error", () => {});
  sockets.push(s);
  return s;
}

interface Measure {
  before: number;
  max: number;
  healthMaxMs: number;
  healthFailures: number;
  gaveUp: boolean;
}

/**
 * Samples the server's RSS every 200 ms and its /health latency once a second
 * (concurrently: a stuck /health never delays the sampling), for `seconds`
 * or until RSS passes GIVE_UP_MB (then the server is killed at once).
 */
async function measure(pid: number, port: number, before: number, seconds: number) {
  const m: Measure = { before, max: before, healthMaxMs: 0, healthFailures: 0, gaveUp: false };
  const end = Date.now() + seconds * 1000;
  const health = (async () => {
    while (Date.now() < end && !m.gaveUp) {
      const t0 = performance.now();
      try {
        const r = await fetch(`http://127.0.0.1:${port}/health`, {
          signal: AbortSignal.timeout(10_000),
        });
        await r.text();
        if (r.status !== 200) m.healthFailures++;
      } catch {
        if (!m.gaveUp) m.healthFailures++;
      }
      m.healthMaxMs = Math.max(m.healthMaxMs, performance.now() - t0);
      await Bun.sleep(1000);
    }
  })();
  while (Date.now() < end) {
    m.max = Math.max(m.max, rssMB(pid));
    if (m.max > GIVE_UP_MB) {
      m.gaveUp = true;
      server?.kill("SIGKILL");
      break;
    }
    await Bun.sleep(200);
  }
  await health;
  return m;
}

function report(name: string, m: Measure, limit: string) {
  console.log(
    `ui-memory: ${name}: RSS ${m.before.toFixed(0)} MB before, max ${m.max.toFixed(0)} MB ` +
      `(+${(m.max - m.before).toFixed(0)} MB)${m.gaveUp ? ` (gave up past ${GIVE_UP_MB} MB)` : ""}, ` +
      `limit: ${limit}; /health slowest ${m.healthMaxMs.toFixed(0)} ms, ${m.healthFailures} failed`,
  );
}

/**
 * Follows all services' logs for `ms` and checks the sequence: every line's
 * seq is the last one's + 1, or the lines in between were announced by a
 * `gap` event (the ring evicted them first). Returns the lines, the gaps and
 * the jumps nothing announced (none: no line is lost silently).
 */
async function readEvents(port: number, ms: number) {
  const ctl = new AbortController();
  const r = await fetch(`http://127.0.0.1:${port}/api/v1/logs`, {
    headers: { Accept: "text/event-stream" },
    signal: ctl.signal,
  });
  const seen = { lines: 0, gaps: 0, unannounced: [] as string[] };
  let last = -1;
  let missed = 0;
  let text = "";
  const event = (e: string) => {
    const data = /^data: (.*)$/m.exec(e)?.[1];
    if (data === undefined) return;
    if (/^event: gap$/m.test(e)) {
      missed += (JSON.parse(data) as { missed: number }).missed;
      seen.gaps++;
      return;
    }
    const seq = (JSON.parse(data) as { seq: number }).seq;
    if (last >= 0 && seq !== last + 1 + missed)
      seen.unannounced.push(`${last} → ${seq} (${missed} announced)`);
    last = seq;
    missed = 0;
    seen.lines++;
  };
  const stop = setTimeout(() => ctl.abort(), ms);
  try {
    for await (const chunk of r.body as ReadableStream<Uint8Array>) {
      text += new TextDecoder().decode(chunk);
      const events = text.split("\n\n");
      text = events.pop() ?? "";
      for (const e of events) event(e);
    }
  } catch {
    // aborted: the time is up
  }
  clearTimeout(stop);
  return seen;
}

describe("UI log clients that never read (a separate server process)", () => {
  test("a ring of control-character lines: 256 silent SSE followers and 10 silent JSON requests stay under 128 MB", async () => {
    const { pid, port } = await startServer("ring");
    const before = rssMB(pid);
    for (let i = 0; i < 256; i++) silentClient(port, "/api/v1/logs", "text/event-stream");
    for (let i = 0; i < 10; i++) silentClient(port, "/api/v1/logs?after=0", "application/json");
    const m = await measure(pid, port, before, ATTACK_S);
    report("ring of control characters, 256 silent SSE + 10 silent JSON", m, `${LIMIT_MB} MB`);
    expect(m.gaveUp).toBe(false);
    expect(m.max).toBeLessThan(LIMIT_MB);
    expect(m.healthFailures).toBe(0);
    expect(m.healthMaxMs).toBeLessThan(1000);
    // A client that reads still gets its page of lines.
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/services/quiet/logs?after=0`, {
      signal: AbortSignal.timeout(30_000),
    });
    expect(((await r.json()) as { text: string }[]).map((l) => l.text)).toEqual([
      "------------ [start] ------------",
      "hello",
    ]);
  }, 120_000);

  test("a service flooding its log: 256 silent SSE followers stay under 128 MB, /health answers within 1 s", async () => {
    const { pid, port } = await startServer("flood");
    const before = rssMB(pid);
    for (let i = 0; i < 256; i++) silentClient(port, "/api/v1/logs", "text/event-stream");
    const m = await measure(pid, port, before, ATTACK_S);
    report("flooding service, 256 silent SSE followers", m, `${LIMIT_MB} MB`);
    expect(m.gaveUp).toBe(false);
    expect(m.max).toBeLessThan(LIMIT_MB);
    expect(m.healthFailures).toBe(0);
    expect(m.healthMaxMs).toBeLessThan(1000);
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/logs?limit=5`, {
      signal: AbortSignal.timeout(30_000),
    });
    expect(((await r.json()) as unknown[]).length).toBe(5);
    // The silent clients go (their slots free once the server sees them close); a reader comes.
    for (const s of sockets) s.destroy();
    sockets = [];
    await Bun.sleep(1000);
    const seen = await readEvents(port, 3000);
    console.log(
      `ui-memory: a reading follower got ${seen.lines} lines and ${seen.gaps} gaps in 3 s`,
    );
    expect(seen.lines).toBeGreaterThan(10);
    expect(seen.unannounced).toEqual([]);
  }, 120_000);
});
