/**
 * Attack: a hostile DHCP server (dhcp-hostile-server.ts) against hero-init's
 * real DHCP client (guest/boot/dhcp.ts through test/integration/dhcp-driver.ts)
 * across a veth pair between two network namespaces. Per request it answers
 * with poison, then floods 500 junk datagrams (random, truncated, 60 KB,
 * wrong xid, wrong MAC). The poison: a domain name carrying "\nnameserver 6.6.6.6", a
 * looping search-list pointer, 1000 routers and name servers, lease/T1/T2 0.
 *
 * The defences: replies are decoded with bounds and checked against xid and
 * MAC; names are validated before they reach resolv.conf; at most three
 * name servers and one router are kept; a lease is at least 10 s, so
 * renewals cannot spin; datagrams are read 32 per wake-up and "ignored"
 * lines are rate-limited. Without the lease floor the client renews and
 * rediscovers as fast as it can and never logs a renewal (this test then
 * times out waiting for one).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { dropVethPair, makeVethPair, must, spawnCollecting } from "../helpers/netns.ts";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(180_000);
const SRV = `hdhcpa-s${process.pid}`;
const CLI = `hdhcpa-c${process.pid}`;
let dir: string;
const procs: Subprocess[] = [];

function spawn(argv: string[]) {
  const entry = spawnCollecting(argv);
  procs.push(entry.p);
  return entry;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "hero-dhcp-attack-"));
  makeVethPair(SRV, CLI);
  // So the server's 255.255.255.255 replies have a way out.
  must(["ip", "-n", SRV, "route", "add", "default", "dev", "veth-s"]);
});

afterAll(async () => {
  for (const p of procs) {
    p.kill("SIGKILL");
    await p.exited;
  }
  dropVethPair(SRV, CLI);
  rmSync(dir, { recursive: true, force: true });
});

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return Number(m?.[1] ?? 0) / 1024;
}

describe("attack: a hostile DHCP server", () => {
  test("poisoned and flooded replies: bounded config, no injected resolv.conf line, no spin, bounded memory", async () => {
    const server = spawn([
      "ip",
      "netns",
      "exec",
      SRV,
      process.execPath,
      join(import.meta.dir, "dhcp-hostile-server.ts"),
    ]);
    await until(
      "the hostile server",
      () => server.out().includes("LISTENING"),
      30_000,
      100,
      server.out,
    );
    const resolv = join(dir, "resolv.conf");
    const driver = join(import.meta.dir, "../integration/dhcp-driver.ts");
    const c = spawn([
      "ip",
      "netns",
      "exec",
      CLI,
      process.execPath,
      driver,
      "veth-c",
      resolv,
      "20000",
    ]);
    let peakMb = 0;
    const renewals = () => c.out().split(") renewed").length - 1;
    await until(
      "three renewals",
      () => {
        peakMb = Math.max(peakMb, rssMb(c.p.pid));
        return renewals() >= 3;
      },
      120_000,
      250,
      () => `${c.out()}\n--- server ---\n${server.out().slice(-2000)}`,
    );
    expect(c.p.exitCode).toBeNull();
    expect(readFileSync(resolv, "utf8")).toBe(
      "# written by hero-init (DHCP)\nnameserver 10.77.0.53\nnameserver 10.77.0.54\nnameserver 10.77.0.55\n",
    );
    expect(c.out()).toContain("veth-c 10.77.0.66/24 via 10.77.0.1 from 10.77.0.1 (lease 10 s");
    const routes = must(["ip", "-n", CLI, "-4", "route", "show", "default"])
      .trim()
      .split("\n")
      .map((l) => l.trim());
    expect(routes).toEqual(["default via 10.77.0.1 dev veth-c"]);
    // One DISCOVER, one REQUEST, then one REQUEST per renewal (T1 5 s) and
    // retransmissions while the junk is drained: a spinning client sends thousands.
    const requests = server.out().split("REQUEST ").length - 1;
    console.log(
      `hostile DHCP: ${requests} requests for ${renewals()} renewals, client peak RSS ${peakMb.toFixed(0)} MB`,
    );
    expect(requests).toBeLessThanOrEqual(20);
    // The junk is reported, but rate-limited (at most one line per 10 s).
    const ignored = c.out().split("ignored").length - 1;
    expect(ignored).toBeGreaterThan(0);
    expect(ignored).toBeLessThanOrEqual(6);
    expect(peakMb).toBeLessThan(256);
  });
});
