/**
 * hero-init's DHCP client (guest/boot/dhcp.ts, run by dhcp-driver.ts)
 * against a real dnsmasq, across a veth pair between two network
 * namespaces (server and client apart, as a VM and its host are). T1/T2
 * are set to seconds through dnsmasq's options so renewal is seen in a test.
 */
import {
  afterAll,
  afterEach,
  beforeAll,
  describe,
  expect,
  setDefaultTimeout,
  test,
} from "bun:test";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { dropVethPair, makeVethPair, must, spawnCollecting } from "../helpers/netns.ts";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(300_000);
const SRV = `hdhcp-s${process.pid}`;
const CLI = `hdhcp-c${process.pid}`;
const DRIVER = join(import.meta.dir, "dhcp-driver.ts");
let dir: string;
const procs: { p: Subprocess; out: () => string }[] = [];

function spawn(argv: string[]) {
  const entry = spawnCollecting(argv);
  procs.push(entry);
  return entry;
}

let servers = 0;

/** dnsmasq serving 10.77.0.0/24 from 10.77.0.1, with T1 = 3 s and T2 = 6 s; a fresh lease file each. */
function dnsmasq(range: string, extra: string[] = []) {
  servers++;
  return spawn([
    "ip",
    "netns",
    "exec",
    SRV,
    "dnsmasq",
    "--keep-in-foreground",
    "--log-facility=-",
    "--log-dhcp",
    "--conf-file=/dev/null",
    "--port=0",
    "--interface=veth-s",
    "--bind-interfaces",
    "--user=root",
    `--dhcp-range=${range},255.255.255.0,2m`,
    "--dhcp-option=option:router,10.77.0.1",
    "--dhcp-option=option:dns-server,10.77.0.53,10.77.0.54",
    "--dhcp-option=option:domain-search,test.lan,example.org",
    "--dhcp-option=option:T1,3",
    "--dhcp-option=option:T2,6",
    "--dhcp-option=option:mtu,1400",
    `--dhcp-leasefile=${join(dir, `leases-${servers}`)}`,
    `--pid-file=${join(dir, `pid-${servers}`)}`,
    ...extra,
  ]);
}

function client(waitMs: number) {
  return spawn([
    "ip",
    "netns",
    "exec",
    CLI,
    process.execPath,
    DRIVER,
    "veth-c",
    join(dir, "resolv.conf"),
    String(waitMs),
  ]);
}

const addr = () => must(["ip", "-n", CLI, "-4", "addr", "show", "dev", "veth-c"]);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "hero-dhcp-"));
  chmodSync(dir, 0o755);
  makeVethPair(SRV, CLI);
});

afterEach(async () => {
  for (const { p } of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
  // Each test starts from an unconfigured interface.
  Bun.spawnSync(["ip", "-n", CLI, "addr", "flush", "dev", "veth-c"]);
  rmSync(join(dir, "resolv.conf"), { force: true });
});

afterAll(() => {
  dropVethPair(SRV, CLI);
  rmSync(dir, { recursive: true, force: true });
});

describe("DHCP client against dnsmasq", () => {
  test("gets a lease: address, default route, MTU and resolv.conf; then renews at T1", async () => {
    // .50–.59: every address of the range matches the 10.77.0.5\d checks below
    // (dnsmasq picks by the client's MAC, which is random per veth: .60 failed them).
    const server = dnsmasq("10.77.0.50,10.77.0.59");
    const c = client(20_000);
    await until("STARTED", () => c.out().includes("STARTED"), 90_000, 100, c.out);
    expect(c.out()).toMatch(
      /dhcp: veth-c 10\.77\.0\.5\d\/24 via 10\.77\.0\.1 from 10\.77\.0\.1 \(lease 120 s, dns 10\.77\.0\.53,10\.77\.0\.54\)/,
    );
    expect(addr()).toMatch(/inet 10\.77\.0\.5\d\/24 /);
    expect(addr()).toContain("mtu 1400");
    expect(must(["ip", "-n", CLI, "-4", "route", "show", "default"])).toContain(
      "default via 10.77.0.1 dev veth-c",
    );
    expect(readFileSync(join(dir, "resolv.conf"), "utf8")).toBe(
      "# written by hero-init (DHCP)\nnameserver 10.77.0.53\nnameserver 10.77.0.54\nsearch test.lan example.org\n",
    );
    // T1 is 3 s: the client renews by unicast and the server ACKs it.
    await until("a renewal", () => c.out().includes(") renewed"), 90_000, 200, c.out);
    expect(c.out()).toContain("renewing 10.77.0.5");
    expect(server.out()).toMatch(
      /DHCPREQUEST\(veth-s\) 10\.77\.0\.5\d[\s\S]*DHCPACK[\s\S]*DHCPREQUEST\(veth-s\) 10\.77\.0\.5\d/,
    );
  });

  test("a NAK on renewal (the server no longer knows the address) drops it and a new lease follows", async () => {
    const first = dnsmasq("10.77.0.50,10.77.0.59");
    const c = client(20_000);
    await until("a lease", () => /inet 10\.77\.0\.5\d\//.test(addr()), 90_000, 200, c.out);
    // A new, authoritative server for another range: our REQUEST is refused.
    first.p.kill("SIGTERM");
    await first.p.exited;
    const second = dnsmasq("10.77.0.100,10.77.0.110", ["--dhcp-authoritative"]);
    await until(
      "the NAK and a new lease",
      () => /inet 10\.77\.0\.1\d\d\//.test(addr()),
      90_000,
      200,
      () => `${c.out()}\n${second.out()}`,
    );
    expect(second.out()).toContain("DHCPNAK");
    expect(c.out()).toContain("the server refused (NAK); discovering again");
    expect(c.out()).toMatch(/10\.77\.0\.5\d removed: the server refused \(NAK\)/);
    expect(addr()).not.toMatch(/inet 10\.77\.0\.5\d\//);
  });

  test("a client started again over a configured address (a self-update re-exec) takes the lease back quietly", async () => {
    dnsmasq("10.77.0.50,10.77.0.59");
    const first = client(20_000);
    await until("STARTED", () => first.out().includes("STARTED"), 90_000, 100, first.out);
    const address = /inet (10\.77\.0\.5\d)\/24/.exec(addr())?.[1];
    expect(address).toBeDefined();
    first.p.kill("SIGKILL");
    await first.p.exited;
    // The address and default route stay, as across PID 1's re-exec; the new client does not wait (0).
    const second = client(0);
    await until(
      "the lease again",
      () => second.out().includes(`veth-c ${address}/24 via 10.77.0.1`),
      90_000,
      100,
      second.out,
    );
    expect(second.out()).not.toMatch(/error|default route via/);
    expect(addr()).toContain(`inet ${address}/24`);
    expect(must(["ip", "-n", CLI, "-4", "route", "show", "default"])).toContain(
      "default via 10.77.0.1 dev veth-c",
    );
  });

  test("no server: a clear message after the bounded wait, boot goes on, and discovery continues", async () => {
    const c = client(3_000);
    await until("STARTED", () => c.out().includes("STARTED"), 90_000, 100, c.out);
    expect(c.out()).toContain(
      "dhcp: veth-c: no DHCP lease within 3 s (no server answered); boot goes on, still asking in the background",
    );
    expect(existsSync(join(dir, "resolv.conf"))).toBe(false);
    // A server that appears later is found by the background discovery.
    dnsmasq("10.77.0.50,10.77.0.59");
    await until("a late lease", () => /inet 10\.77\.0\.5\d\//.test(addr()), 90_000, 200, c.out);
  });
});
