/**
 * The DHCPv4 client's socket side, in PID 1: one runner per interface with
 * `dhcp = true` (or `ip=dhcp`). It drives the pure state machine
 * (lib/dhcp-client.ts) with a monotonic clock, reads replies only while one
 * is expected, and applies leases with ioctl(2) (sys/net.ts). Loaded with
 * import() by the network step, so a VM without DHCP never evaluates it.
 *
 * Boot waits for the first leases at most `waitMs`; then it goes on and the
 * runners keep discovering, renewing and rebinding in the background.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type Lease, leaseResolvConf, MAX_REPLY } from "../../lib/dhcp.ts";
import { type DhcpAction, DhcpClient } from "../../lib/dhcp-client.ts";
import { isHeroError } from "../../lib/errors.ts";
import { describeError, log } from "../../lib/log.ts";
import { openDhcpSocket, recvDhcp, sendDhcp } from "../../sys/dhcp-socket.ts";
import { addDefaultRoute, clearIpv4, delDefaultRoute, setIpv4, setMtu } from "../../sys/net.ts";

/** How one interface is run. */
export interface DhcpInterface {
  name: string;
  /** The config names DNS servers itself: resolv.conf is left alone. */
  staticDns: boolean;
  /** The config's search domains (they win over the lease's). */
  search: string[];
  /** Where resolv.conf is written (/etc/resolv.conf in a VM). */
  resolvPath: string;
  /** A static MTU from the config: the lease's is ignored. */
  mtu?: number;
  /** Our host name, sent to the server (option 12). */
  hostname?: string;
  /** Called with the lease's host name, once, when the config names none. */
  setHostname?: (name: string) => void;
}

/** How often the socket is read while a reply is expected. */
const POLL_MS = 100;
/** Datagrams read per wake-up at most: a flood cannot starve PID 1's event loop. */
const READS_PER_WAKE = 32;
/** setTimeout's ceiling is ~24.8 days; longer waits are re-armed. */
const MAX_TIMER_MS = 86_400_000;
/** Repeated "ignored a reply" lines are logged at most this often. */
const IGNORED_LOG_MS = 10_000;

/** Pure: "aa:bb:cc:dd:ee:ff" → 6 bytes, or null. */
export function parseMac(text: string): Uint8Array | null {
  const parts = text.trim().split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) return null;
  return Uint8Array.from(parts.map((p) => Number.parseInt(p, 16)));
}

function random(): number {
  return (crypto.getRandomValues(new Uint32Array(1))[0] as number) / 0x100000000;
}

class Runner {
  readonly client: DhcpClient;
  private readonly buf = new Uint8Array(MAX_REPLY + 1);
  private lastIgnoredLog = -Infinity;
  private hostnameSet = false;
  readonly firstLease: Promise<void>;
  private gotLease: () => void = () => {};

  constructor(
    private readonly o: DhcpInterface,
    mac: Uint8Array,
    private readonly fd: number,
  ) {
    this.client = new DhcpClient({ mac, hostname: o.hostname, random });
    this.firstLease = new Promise((resolve) => {
      this.gotLease = resolve;
    });
  }

  name(): string {
    return this.o.name;
  }

  start(): void {
    this.apply(this.client.start(performance.now()));
    this.schedule();
  }

  private wake(): void {
    try {
      for (let i = 0; i < READS_PER_WAKE && this.client.awaitingReply(); i++) {
        const n = recvDhcp(this.fd, this.buf);
        if (n === null) break;
        this.apply(this.client.receive(this.buf.subarray(0, n), performance.now()));
      }
      this.apply(this.client.tick(performance.now()));
    } catch (e) {
      log.error("dhcp", `${this.o.name}: ${describeError(e)}`);
    }
    this.schedule();
  }

  private schedule(): void {
    const now = performance.now();
    let at = this.client.nextWake();
    if (this.client.awaitingReply()) at = Math.min(at, now + POLL_MS);
    if (at === Infinity) return; // an infinite lease: nothing more to do
    const delay = Math.min(Math.max(0, at - now), MAX_TIMER_MS);
    setTimeout(() => this.wake(), delay);
  }

  private apply(actions: DhcpAction[]): void {
    for (const a of actions) {
      try {
        if (a.kind === "send") this.send(a.packet, a.to);
        else if (a.kind === "bound") this.bind(a.lease, a.previous);
        else if (a.kind === "unbound") this.unbind(a.lease, a.reason);
        else this.note(a.level, a.message);
      } catch (e) {
        log.error("dhcp", `${this.o.name}: ${describeError(e)}`);
      }
    }
  }

  private note(level: "info" | "warn", message: string): void {
    if (message.startsWith("ignored")) {
      const now = performance.now();
      if (now - this.lastIgnoredLog < IGNORED_LOG_MS) return;
      this.lastIgnoredLog = now;
    }
    log[level]("dhcp", `${this.o.name}: ${message}`);
  }

  private send(packet: Uint8Array, to: string): void {
    try {
      sendDhcp(this.fd, packet, to);
    } catch (e) {
      this.note("warn", `cannot send to ${to}: ${describeError(e)}`);
    }
  }

  /** Applies a new or renewed lease: only what changed is touched. */
  private bind(lease: Lease, previous: Lease | null): void {
    const name = this.o.name;
    const moved =
      !previous || previous.address !== lease.address || previous.prefix !== lease.prefix;
    if (previous && moved) clearIpv4(name);
    if (moved) setIpv4(name, lease.address, lease.prefix);
    if (!this.o.mtu && lease.mtu && lease.mtu !== previous?.mtu) setMtu(name, lease.mtu);
    if (previous?.router && !moved && previous.router !== lease.router) {
      try {
        delDefaultRoute(previous.router);
      } catch {
        // already gone
      }
    }
    if (lease.router && (moved || previous?.router !== lease.router)) {
      try {
        addDefaultRoute(lease.router);
      } catch (e) {
        // EEXIST: ours already (a resumed client). Otherwise another interface may hold it.
        if (!isHeroError(e, "sys.EEXIST"))
          this.note("warn", `default route via ${lease.router}: ${describeError(e)}`);
      }
    }
    if (!this.o.staticDns) {
      const text = leaseResolvConf(lease, this.o.search);
      if (text !== null) writeFileSync(this.o.resolvPath, text);
    }
    if (lease.hostname && this.o.setHostname && !this.hostnameSet) {
      this.hostnameSet = true;
      this.o.setHostname(lease.hostname);
    }
    const time = lease.seconds === Infinity ? "infinite" : `${lease.seconds} s`;
    log.info(
      "dhcp",
      `${name} ${lease.address}/${lease.prefix}${lease.router ? ` via ${lease.router}` : ""} from ${lease.server} (lease ${time}${lease.dns.length ? `, dns ${lease.dns.join(",")}` : ""})${previous ? " renewed" : ""}`,
    );
    this.gotLease();
  }

  private unbind(lease: Lease, reason: string): void {
    log.warn("dhcp", `${this.o.name}: ${lease.address} removed: ${reason}`);
    clearIpv4(this.o.name);
  }
}

/**
 * Starts a client on each interface (already up) and waits until each has
 * a lease or `waitMs` has passed (0: no wait); interfaces still without one
 * are named on the console and keep trying in the background.
 */
export async function startDhcp(ifaces: DhcpInterface[], waitMs: number): Promise<void> {
  const started: Runner[] = [];
  for (const iface of ifaces) {
    try {
      const mac = parseMac(readFileSync(`/sys/class/net/${iface.name}/address`, "latin1"));
      if (!mac) throw new Error("no Ethernet address in /sys/class/net");
      const runner = new Runner(iface, mac, openDhcpSocket(iface.name));
      runner.start();
      started.push(runner);
      log.info("dhcp", `${iface.name}: asking for a lease`);
    } catch (e) {
      log.error("dhcp", `${iface.name}: cannot start the DHCP client: ${describeError(e)}`);
    }
  }
  if (waitMs <= 0) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, waitMs);
  });
  await Promise.race([Promise.all(started.map((r) => r.firstLease)), timeout]);
  clearTimeout(timer);
  for (const r of started) {
    if (r.client.lease === null)
      log.warn(
        "dhcp",
        `${r.name()}: no DHCP lease within ${Math.round(waitMs / 1000)} s (no server answered); boot goes on, still asking in the background`,
      );
  }
}
