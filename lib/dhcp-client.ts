/**
 * The DHCPv4 client state machine (RFC 2131 §4.4), pure: time and packets
 * in, actions out (send this, the lease is bound, the lease is gone). The
 * socket side (guest/boot/dhcp.ts) owns the clock and the interface.
 *
 * A hostile server cannot make it spin or grow: every reply is decoded with
 * bounds, checked against our transaction id and hardware address, and
 * every path back to discovery waits (retransmissions back off up to a
 * minute, NAKs back off too), so at worst it sends a few packets a second.
 */
import { decodeReply, encodeRequest, type Lease, leaseFrom, MSG, serverId } from "./dhcp.ts";

/** RFC 2131 client states (INIT-REBOOT is not used: a VM boots without a previous lease). */
export type DhcpState = "init" | "selecting" | "requesting" | "bound" | "renewing" | "rebinding";

/** What the socket side must do. */
export type DhcpAction =
  | { kind: "send"; packet: Uint8Array; to: string }
  | { kind: "bound"; lease: Lease; previous: Lease | null }
  | { kind: "unbound"; lease: Lease; reason: string }
  | { kind: "log"; level: "info" | "warn"; message: string };

export interface DhcpClientOptions {
  /** The interface's Ethernet address (6 bytes). */
  mac: Uint8Array;
  /** Sent as option 12 so the server may register it. */
  hostname?: string;
  /** [0, 1): for transaction ids and jitter (injected so tests are repeatable). */
  random: () => number;
}

const BROADCAST = "255.255.255.255";
const FIRST_RETRY_MS = 2_000;
const MAX_RETRY_MS = 64_000;
const REQUEST_TRIES = 4;
/** While renewing or rebinding, retransmit at half the time left, but not more often than this. */
const MIN_RENEW_RETRY_MS = 2_000;

export class DhcpClient {
  state: DhcpState = "init";
  lease: Lease | null = null;
  private xid = 0;
  private wakeAt = 0;
  private tries = 0;
  private naks = 0;
  private startedAt = 0;
  private offer: { address: string; server: string } | null = null;

  constructor(private readonly o: DhcpClientOptions) {}

  /** When `tick` next has something to do (absolute ms; Infinity: nothing until a reply). */
  nextWake(): number {
    return this.wakeAt;
  }

  /** True while a reply is expected (the socket side reads only then). */
  awaitingReply(): boolean {
    return this.state !== "init" && this.state !== "bound";
  }

  /** Begins discovery. */
  start(now: number): DhcpAction[] {
    return this.discover(now, true);
  }

  /** Runs what is due at `now`: retransmissions, T1, T2, expiry. */
  tick(now: number): DhcpAction[] {
    if (now < this.wakeAt) return [];
    switch (this.state) {
      case "init":
        return this.discover(now, true);
      case "selecting":
        return this.discover(now, false);
      case "requesting":
        if (this.tries >= REQUEST_TRIES) {
          return [
            this.note("warn", "no ACK to our REQUEST; discovering again"),
            ...this.discover(now, true),
          ];
        }
        return [this.sendRequest(now, BROADCAST)];
      case "bound":
      case "renewing":
      case "rebinding":
        return this.renewOrRebind(now);
    }
  }

  /** Handles one datagram from port 67. Anything not meant for us, or malformed, is ignored with a reason. */
  receive(bytes: Uint8Array, now: number): DhcpAction[] {
    if (!this.awaitingReply()) return [];
    const d = decodeReply(bytes);
    if ("error" in d) return [this.note("warn", `ignored a reply: ${d.error}`)];
    const r = d.reply;
    if (r.xid !== this.xid) return [];
    if (!r.chaddr.every((b, i) => b === this.o.mac[i])) return [];
    if (r.type === MSG.OFFER && this.state === "selecting") {
      const server = serverId(r);
      if (!server || r.yiaddr === "0.0.0.0")
        return [this.note("warn", "ignored an OFFER without a server id or address")];
      this.offer = { address: r.yiaddr, server };
      this.state = "requesting";
      this.tries = 0;
      return [this.sendRequest(now, BROADCAST)];
    }
    if (r.type === MSG.ACK && this.state !== "selecting") {
      const lease = leaseFrom(r, now, this.offer?.server ?? this.lease?.server ?? null);
      if ("error" in lease) return [this.note("warn", `ignored an ACK: ${lease.error}`)];
      if (this.state === "requesting" && lease.address !== this.offer?.address)
        return [
          this.note(
            "warn",
            `ignored an ACK for ${lease.address}: we asked for ${this.offer?.address}`,
          ),
        ];
      const previous = this.lease;
      this.lease = lease;
      this.state = "bound";
      this.naks = 0;
      this.wakeAt = lease.renewAt;
      return [{ kind: "bound", lease, previous }];
    }
    if (r.type === MSG.NAK && this.state !== "selecting") {
      const server = serverId(r);
      const ours = this.offer?.server ?? this.lease?.server;
      if (this.state !== "rebinding" && server && ours && server !== ours) return [];
      return this.restart(now, "the server refused (NAK)");
    }
    return [];
  }

  private note(level: "info" | "warn", message: string): DhcpAction {
    return { kind: "log", level, message };
  }

  private backoff(now: number): void {
    const base = Math.min(FIRST_RETRY_MS * 2 ** this.tries, MAX_RETRY_MS);
    this.wakeAt = now + base + Math.floor((this.o.random() - 0.5) * 1000);
    this.tries++;
  }

  private newXid(now: number): void {
    this.xid = Math.floor(this.o.random() * 0x100000000) >>> 0;
    this.startedAt = now;
  }

  private discover(now: number, fresh: boolean): DhcpAction[] {
    if (fresh) {
      this.newXid(now);
      this.tries = 0;
      this.offer = null;
    }
    this.state = "selecting";
    this.backoff(now);
    this.tries = Math.min(this.tries, 6);
    const packet = this.encode(MSG.DISCOVER, now, {});
    return [{ kind: "send", packet, to: BROADCAST }];
  }

  private sendRequest(now: number, to: string): DhcpAction {
    this.backoff(now);
    const offer = this.offer;
    const packet = this.encode(MSG.REQUEST, now, {
      requestedIp: offer?.address,
      serverId: offer?.server,
    });
    return { kind: "send", packet, to };
  }

  private encode(
    type: number,
    now: number,
    extra: { requestedIp?: string; serverId?: string; ciaddr?: string },
  ) {
    return encodeRequest({
      type,
      xid: this.xid,
      mac: this.o.mac,
      hostname: this.o.hostname,
      secs: (now - this.startedAt) / 1000,
      ...extra,
    });
  }

  /** BOUND/RENEWING/REBINDING at their deadlines (RFC 2131 §4.4.5). */
  private renewOrRebind(now: number): DhcpAction[] {
    const lease = this.lease;
    if (!lease) return this.discover(now, true);
    if (now >= lease.expiresAt) {
      this.lease = null;
      return [{ kind: "unbound", lease, reason: "the lease expired" }, ...this.discover(now, true)];
    }
    const out: DhcpAction[] = [];
    if (this.state === "bound") {
      this.newXid(now);
      this.state = "renewing";
      out.push(this.note("info", `renewing ${lease.address} with ${lease.server}`));
    }
    if (this.state === "renewing" && now >= lease.rebindAt) {
      this.newXid(now);
      this.state = "rebinding";
      out.push(
        this.note(
          "warn",
          `no answer from ${lease.server}; rebinding ${lease.address} with any server`,
        ),
      );
    }
    const deadline = this.state === "renewing" ? lease.rebindAt : lease.expiresAt;
    const left = deadline - now;
    this.wakeAt =
      now + (left <= MIN_RENEW_RETRY_MS ? left : Math.max(left / 2, MIN_RENEW_RETRY_MS));
    const packet = this.encode(MSG.REQUEST, now, { ciaddr: lease.address });
    out.push({ kind: "send", packet, to: this.state === "renewing" ? lease.server : BROADCAST });
    return out;
  }

  /** After a NAK: drop the lease, wait (longer after each NAK in a row), then discover. */
  private restart(now: number, reason: string): DhcpAction[] {
    const out: DhcpAction[] = [this.note("warn", `${reason}; discovering again`)];
    if (this.lease) out.push({ kind: "unbound", lease: this.lease, reason });
    this.lease = null;
    this.offer = null;
    this.state = "init";
    this.wakeAt = now + Math.min(1000 * 2 ** this.naks, MAX_RETRY_MS);
    this.naks = Math.min(this.naks + 1, 6);
    return out;
  }
}
