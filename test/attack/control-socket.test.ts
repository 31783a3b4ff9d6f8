/**
 * Attack: peers of the control socket (/var/run/zinit.sock, root only: a
 * service running as root, a careless script) that open connections and
 * never read. The defence (guest/control/server.ts): a follower (`log`,
 * stream_subscribeLogs) is a position in the log ring, not a queue: lines
 * are read from the ring only when its socket takes them, a follower that
 * falls behind skips ahead with zinit's `[-] zinit: N lines dropped` line;
 * answers wait in bounded queues (per client and in total) while reading
 * from that client pauses; at most 512 connections and 128 followers, the
 * rest refused with an error line. So PID 1's memory stays bounded.
 *
 * The first test runs the real dist/hero-init (a pid namespace, a flooding
 * service) and prints its RSS; the others run the real server over the real
 * supervisor API in this process.
 */
import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { controlApi } from "../../guest/control/api.ts";
import { connect } from "../../guest/control/client.ts";
import { startControlServer } from "../../guest/control/server.ts";
import { createSupervisor } from "../../guest/supervisor/supervisor.ts";
import { type Daemon, rssMB, startDaemon, timedStatus } from "./supervisor-daemon.ts";

/** docs/services.md, "Limits". */
const MAX_CONNECTIONS = 512;
const LIMIT_MB = 128;
/** Beyond this the attack has clearly won: stop before it eats the machine. */
const GIVE_UP_MB = 1024;

let daemon: Daemon | null = null;
let sockets: Socket[] = [];

afterEach(async () => {
  for (const s of sockets) s.destroy();
  sockets = [];
  await daemon?.stop();
  daemon = null;
});

/** A peer that sends one request and then never reads a byte. */
function silent(sock: string, line: string): Socket {
  const s = createConnection(sock);
  s.pause();
  s.on("error", () => {});
  s.write(line);
  sockets.push(s);
  return s;
}

describe("log followers that never read (the real hero-init, a flooding service)", () => {
  test("256 `log` followers: RSS stays under 128 MB, `status` answers, extra followers are refused", async () => {
    daemon = await startDaemon({
      flood: `exec: yes ${"x".repeat(200)}\n`,
      quiet: `exec: sh -c "echo quiet; exec sleep 100000"\n`,
    });
    const { pid, sock } = daemon;
    await Bun.sleep(3000); // the flood fills the ring: the baseline is PID 1 under the flood
    const before = rssMB(pid);
    for (let i = 0; i < 256; i++) silent(sock, "log\n");
    let max = before;
    let slowest = 0;
    let unanswered = 0;
    let gaveUp = false;
    const end = Date.now() + 15_000;
    let nextStatus = 0;
    while (Date.now() < end) {
      max = Math.max(max, rssMB(pid));
      if (max > GIVE_UP_MB) {
        gaveUp = true;
        break;
      }
      if (Date.now() >= nextStatus) {
        nextStatus = Date.now() + 1000;
        const ms = await timedStatus(sock, "quiet", 10_000);
        if (ms === null) unanswered++;
        else slowest = Math.max(slowest, ms);
      }
      await Bun.sleep(200);
    }
    console.log(
      `control-socket: 256 silent log followers on a flood: RSS ${before.toFixed(0)} MB before, ` +
        `max ${max.toFixed(0)} MB${gaveUp ? ` (gave up past ${GIVE_UP_MB} MB)` : ""} (limit ${LIMIT_MB} MB); ` +
        `status slowest ${slowest.toFixed(0)} ms, ${unanswered} unanswered`,
    );
    expect(gaveUp).toBe(false);
    expect(max).toBeLessThan(LIMIT_MB);
    expect(unanswered).toBe(0);
    expect(daemon.output()).toContain("log follower refused");
  }, 120_000);
});

describe("the control server over the supervisor API, in process", () => {
  const dir = mkdtempSync(join(tmpdir(), "hero-ctl-attack-"));
  const sock = join(dir, "zinit.sock");
  const sup = createSupervisor({ cgroups: false, ringSize: 2000 });
  const api = controlApi(sup, dir, { shutdown() {}, reboot() {} });
  const stop = startControlServer(api, [sock], () => ({}));
  afterAll(() => {
    stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a connection, sends `line`, collects what comes back until `until` matches or the peer closes. */
  function exchange(
    line: string,
    until: RegExp,
    ms = 10_000,
  ): Promise<{ got: string; closed: boolean }> {
    return new Promise((resolve) => {
      let got = "";
      const c = createConnection(sock);
      sockets.push(c);
      const t = setTimeout(() => resolve({ got, closed: false }), ms);
      c.on("data", (d) => {
        got += d.toString();
        if (until.test(got)) {
          clearTimeout(t);
          resolve({ got, closed: false });
        }
      });
      c.on("close", () => {
        clearTimeout(t);
        resolve({ got, closed: true });
      });
      c.on("error", () => {});
      c.write(line);
    });
  }

  const rpc = (id: number, method: string) =>
    `${JSON.stringify({ jsonrpc: "2.0", id, method, params: [] })}\n`;

  test("the peer beyond 512 connections gets one error line and is closed; slots come back", async () => {
    // Every connection is open and answered (so the server has accepted it).
    const open = await Promise.all(
      Array.from({ length: MAX_CONNECTIONS }, (_, i) => exchange(rpc(i, "service_list"), /\n/)),
    );
    expect(open.every((r) => r.got.includes('"result"'))).toBe(true);
    const extra = await exchange(rpc(999, "service_list"), /(?!)/); // until it closes
    expect(extra.closed).toBe(true);
    expect(extra.got).toContain("too many connections");
    expect(extra.got).not.toContain('"result"');
    // The CLI's client says why.
    const client = await connect(sock);
    await expect(client.call("service_list")).rejects.toThrow(/too many connections: 512 open/);
    client.close();
    // When they leave, their slots are free again.
    for (const s of sockets) s.destroy();
    sockets = [];
    await Bun.sleep(300);
    const again = await exchange(rpc(1000, "service_list"), /\n/);
    expect(again.got).toContain('"result"');
  }, 60_000);

  test("`log snapshot` of a full ring to a client that reads late is complete, then closed", async () => {
    for (let i = 0; i < 2000; i++) sup.ring.push("big", "stdout", `${i} ${"y".repeat(7000)}`);
    const held = sup.ring.since(0, "big").length;
    const c = createConnection(sock);
    sockets.push(c);
    c.on("error", () => {});
    c.pause();
    c.write("log snapshot big\n");
    await Bun.sleep(1000); // the server meets a full socket long before the snapshot ends
    let got = "";
    const closed = new Promise<void>((r) => c.on("close", () => r()));
    c.on("data", (d) => {
      got += d.toString();
    });
    c.resume();
    await Promise.race([closed, Bun.sleep(20_000)]);
    const lines = got.split("\n").filter(Boolean);
    expect(lines.length).toBe(held);
    expect(lines.at(-1)).toStartWith("[+] big: 1999 ");
  }, 60_000);

  test("a follower that falls behind skips ahead with `N lines dropped`, then gets new lines", async () => {
    const c = createConnection(sock);
    sockets.push(c);
    c.on("error", () => {});
    c.pause();
    c.write("log slow\n");
    await Bun.sleep(100);
    // Far more than the socket holds: the follower cannot keep up.
    for (let i = 0; i < 20_000; i++) sup.ring.push("slow", "stdout", `${i} ${"z".repeat(500)}`);
    let got = "";
    const done = new Promise<boolean>((r) => {
      c.on("data", (d) => {
        got += d.toString();
        if (got.includes("[+] slow: END\n")) r(true);
      });
      c.on("close", () => r(false));
    });
    c.resume();
    await Bun.sleep(200);
    sup.ring.push("slow", "stdout", "END");
    expect(await Promise.race([done, Bun.sleep(10_000).then(() => false)])).toBe(true);
    const dropped = [...got.matchAll(/\[-\] zinit: (\d+) lines dropped\n/g)].map((m) =>
      Number(m[1]),
    );
    expect(dropped.length).toBeGreaterThan(0);
    // In order, and every line is either delivered or counted as dropped.
    const nums = [...got.matchAll(/\[\+\] slow: (\d+) /g)].map((m) => Number(m[1]));
    for (let i = 1; i < nums.length; i++) expect(nums[i]).toBeGreaterThan(nums[i - 1] as number);
    expect(nums.length + dropped.reduce((a, b) => a + b, 0)).toBe(20_000);
  }, 60_000);

  test("a client that sends requests and does not read the answers is paused, not dropped", async () => {
    const n = 150_000; // ~5.7 MB of answers: more than a client may leave unread
    const c = createConnection(sock);
    sockets.push(c);
    c.on("error", () => {});
    c.pause();
    let batch = "";
    for (let i = 0; i < n; i++) batch += rpc(i, "service_list");
    c.write(batch);
    await Bun.sleep(1000);
    let answers = 0;
    let tail = "";
    const done = new Promise<boolean>((r) => {
      c.on("data", (d) => {
        const text = tail + d.toString();
        const parts = text.split("\n");
        tail = parts.pop() as string;
        answers += parts.length;
        if (answers >= n) r(true);
      });
      c.on("close", () => r(false));
    });
    c.resume();
    expect(await Promise.race([done, Bun.sleep(30_000).then(() => false)])).toBe(true);
    expect(answers).toBe(n);
  }, 60_000);
});
