/**
 * DHCPv4 wire format (RFC 2131, options RFC 2132), pure: requests out,
 * replies in. Every reply comes from the network and is hostile input: the
 * decoder never throws, rejects what is malformed with a reason, and keeps
 * only a bounded amount of what a well-formed reply carries (one address,
 * at most a few routers and name servers, a capped search list), so a
 * server cannot grow PID 1's memory or inject lines into resolv.conf.
 */

/** DHCP message types (option 53). */
export const MSG = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
} as const;

const OPT = {
  PAD: 0,
  SUBNET: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  DOMAIN: 15,
  MTU: 26,
  REQUESTED_IP: 50,
  LEASE: 51,
  OVERLOAD: 52,
  MSG_TYPE: 53,
  SERVER_ID: 54,
  PARAMS: 55,
  MAX_SIZE: 57,
  T1: 58,
  T2: 59,
  CLIENT_ID: 61,
  SEARCH: 119,
  END: 255,
} as const;

const MAGIC = 0x63825363;
const HEADER = 236;
/** What a reply may be at most (a jumbo frame's payload); bigger is refused unread. */
export const MAX_REPLY = 9000;
/** resolv.conf reads at most 3 name servers (MAXNS). */
const MAX_DNS = 3;
const MAX_ROUTERS = 4;
/** glibc's historic search limits: 6 domains, 256 characters. */
const MAX_SEARCH = 6;
const MAX_SEARCH_CHARS = 256;
/** A lease shorter than this is raised to it, so a server cannot make the client spin. */
export const MIN_LEASE_S = 10;
/** 0xffffffff seconds: a lease that never expires (RFC 2131 §3.3). */
const INFINITE = 0xffffffff;

const hostnameRe =
  /^(?=.{1,253}$)[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

/** A decoded BOOTREPLY: the fixed fields we use and the options, concatenated per code (RFC 3396). */
export interface DhcpReply {
  xid: number;
  yiaddr: string;
  chaddr: Uint8Array;
  type: number;
  options: Map<number, Uint8Array>;
}

/** What the client asks for in one message. */
export interface RequestSpec {
  type: number;
  xid: number;
  mac: Uint8Array;
  /** Seconds since the client began acquiring or renewing. */
  secs: number;
  /** Our address while renewing or rebinding (RFC 2131 table 5). */
  ciaddr?: string;
  requestedIp?: string;
  serverId?: string;
  hostname?: string;
}

/** The configuration a lease gives, validated. Times are absolute milliseconds. */
export interface Lease {
  address: string;
  prefix: number;
  server: string;
  router?: string;
  dns: string[];
  search: string[];
  mtu?: number;
  hostname?: string;
  /** Seconds the server granted (after clamping); Infinity for an infinite lease. */
  seconds: number;
  obtainedAt: number;
  renewAt: number;
  rebindAt: number;
  expiresAt: number;
}

function ipBytes(ip: string): number[] {
  return ip.split(".").map((p) => Number(p) & 0xff);
}

function ipAt(b: Uint8Array, off: number): string {
  return `${b[off]}.${b[off + 1]}.${b[off + 2]}.${b[off + 3]}`;
}

/** True for an address a host may hold: not 0/8, loopback, multicast, reserved or broadcast. */
export function isUnicast(ip: string): boolean {
  const first = Number(ip.split(".")[0]);
  return first !== 0 && first !== 127 && first < 224;
}

/** Encodes a BOOTREQUEST (broadcast flag set, so replies reach an unconfigured interface). */
export function encodeRequest(r: RequestSpec): Uint8Array {
  const opts: number[] = [OPT.MSG_TYPE, 1, r.type];
  opts.push(OPT.CLIENT_ID, 7, 1, ...r.mac.subarray(0, 6));
  if (r.requestedIp) opts.push(OPT.REQUESTED_IP, 4, ...ipBytes(r.requestedIp));
  if (r.serverId) opts.push(OPT.SERVER_ID, 4, ...ipBytes(r.serverId));
  opts.push(OPT.MAX_SIZE, 2, 1500 >> 8, 1500 & 0xff);
  const params = [
    OPT.SUBNET,
    OPT.ROUTER,
    OPT.DNS,
    OPT.HOSTNAME,
    OPT.DOMAIN,
    OPT.MTU,
    OPT.LEASE,
    OPT.SERVER_ID,
    OPT.T1,
    OPT.T2,
    OPT.SEARCH,
  ];
  opts.push(OPT.PARAMS, params.length, ...params);
  if (r.hostname && hostnameRe.test(r.hostname)) {
    const h = new TextEncoder().encode(r.hostname);
    opts.push(OPT.HOSTNAME, h.length, ...h);
  }
  opts.push(OPT.END);
  // 300 bytes at least: the BOOTP minimum some relays and servers insist on.
  const out = new Uint8Array(Math.max(300, HEADER + 4 + opts.length));
  const dv = new DataView(out.buffer);
  out[0] = 1; // BOOTREQUEST
  out[1] = 1; // Ethernet
  out[2] = 6;
  dv.setUint32(4, r.xid >>> 0);
  dv.setUint16(8, Math.min(Math.max(0, Math.floor(r.secs)), 0xffff));
  dv.setUint16(10, 0x8000);
  if (r.ciaddr) out.set(ipBytes(r.ciaddr), 12);
  out.set(r.mac.subarray(0, 6), 28);
  dv.setUint32(HEADER, MAGIC);
  out.set(opts, HEADER + 4);
  return out;
}

/** Parses an options area into `into`, concatenating repeats. An error string for a truncated option. */
function parseOptions(
  b: Uint8Array,
  start: number,
  end: number,
  into: Map<number, Uint8Array>,
): string | null {
  let i = start;
  while (i < end) {
    const code = b[i] as number;
    if (code === OPT.PAD) {
      i++;
      continue;
    }
    if (code === OPT.END) return null;
    if (i + 1 >= end) return `option ${code} has no length byte`;
    const len = b[i + 1] as number;
    if (i + 2 + len > end) return `option ${code} claims ${len} bytes past the end`;
    const value = b.subarray(i + 2, i + 2 + len);
    const prev = into.get(code);
    if (prev) {
      const joined = new Uint8Array(prev.length + len);
      joined.set(prev);
      joined.set(value, prev.length);
      into.set(code, joined);
    } else into.set(code, value);
    i += 2 + len;
  }
  return null;
}

/** Decodes a BOOTREPLY; never throws: a reason for anything it refuses. */
export function decodeReply(b: Uint8Array): { reply: DhcpReply } | { error: string } {
  if (b.length < HEADER + 4) return { error: `${b.length} bytes: shorter than a DHCP header` };
  if (b.length > MAX_REPLY) return { error: `${b.length} bytes: longer than ${MAX_REPLY}` };
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b[0] !== 2) return { error: `op ${b[0]}: not a BOOTREPLY` };
  if (dv.getUint32(HEADER) !== MAGIC) return { error: "no DHCP magic cookie" };
  const options = new Map<number, Uint8Array>();
  const bad = parseOptions(b, HEADER + 4, b.length, options);
  if (bad) return { error: bad };
  // Option overload (52): more options in `file` (108..236), then `sname` (44..108).
  const overload = options.get(OPT.OVERLOAD)?.[0] ?? 0;
  if (overload & 1) {
    const e = parseOptions(b, 108, 236, options);
    if (e) return { error: `file field: ${e}` };
  }
  if (overload & 2) {
    const e = parseOptions(b, 44, 108, options);
    if (e) return { error: `sname field: ${e}` };
  }
  const type = options.get(OPT.MSG_TYPE);
  if (type?.length !== 1) return { error: "no message type (option 53)" };
  return {
    reply: {
      xid: dv.getUint32(4),
      yiaddr: ipAt(b, 16),
      chaddr: b.slice(28, 34),
      type: type[0] as number,
      options,
    },
  };
}

/** The IPv4 addresses in an option, at most `max`, unicast ones only. */
function addrList(v: Uint8Array | undefined, max: number): string[] {
  if (!v || v.length % 4 !== 0) return [];
  const out: string[] = [];
  for (let off = 0; off + 4 <= v.length && out.length < max; off += 4) {
    const ip = ipAt(v, off);
    if (isUnicast(ip)) out.push(ip);
  }
  return out;
}

/** The server identifier (option 54), or null when absent or not a unicast address. */
export function serverId(r: DhcpReply): string | null {
  const v = r.options.get(OPT.SERVER_ID);
  if (v?.length !== 4) return null;
  const ip = ipAt(v, 0);
  return isUnicast(ip) ? ip : null;
}

function u32(v: Uint8Array | undefined): number | null {
  if (v?.length !== 4) return null;
  return new DataView(v.buffer, v.byteOffset, 4).getUint32(0);
}

function maskPrefix(v: Uint8Array | undefined, address: string): number {
  const m = u32(v);
  if (m !== null) {
    const bits = m.toString(2).padStart(32, "0");
    if (/^1+0*$/.test(bits)) return bits.indexOf("0") === -1 ? 32 : bits.indexOf("0");
  }
  const first = Number(address.split(".")[0]);
  return first < 128 ? 8 : first < 192 ? 16 : 24;
}

function text(v: Uint8Array | undefined): string | undefined {
  if (!v) return undefined;
  const s = new TextDecoder("latin1").decode(v).replace(/\0+$/, "");
  return hostnameRe.test(s) ? s : undefined;
}

/**
 * Decodes the domain search list (option 119, RFC 3397: DNS names with
 * compression pointers into the option). Bounded: pointers must go
 * backwards, names and the list are capped, invalid names are dropped.
 */
export function decodeSearch(v: Uint8Array | undefined): string[] {
  if (!v) return [];
  const out: string[] = [];
  let chars = 0;
  let i = 0;
  while (i < v.length && out.length < MAX_SEARCH) {
    const labels: string[] = [];
    let at = i;
    let next = -1;
    let jumps = 0;
    let ok = false;
    while (at < v.length && jumps <= 16) {
      const len = v[at] as number;
      if (len === 0) {
        ok = true;
        if (next < 0) next = at + 1;
        break;
      }
      if ((len & 0xc0) === 0xc0) {
        if (at + 1 >= v.length) break;
        const target = ((len & 0x3f) << 8) | (v[at + 1] as number);
        if (target >= at) break; // only backwards: no loops
        if (next < 0) next = at + 2;
        at = target;
        jumps++;
        continue;
      }
      if (len > 63 || at + 1 + len > v.length) break;
      labels.push(new TextDecoder("latin1").decode(v.subarray(at + 1, at + 1 + len)));
      at += 1 + len;
    }
    if (!ok) break;
    const name = labels.join(".");
    if (hostnameRe.test(name) && chars + name.length + 1 <= MAX_SEARCH_CHARS) {
      out.push(name);
      chars += name.length + 1;
    }
    i = next;
  }
  return out;
}

/** Renewal times from the lease and T1/T2 options; nonsense T1/T2 falls back to RFC 2131's 0.5 and 0.875. */
function timers(
  r: DhcpReply,
  now: number,
): Pick<Lease, "seconds" | "renewAt" | "rebindAt" | "expiresAt"> {
  const raw = u32(r.options.get(OPT.LEASE));
  if (raw === INFINITE)
    return { seconds: Infinity, renewAt: Infinity, rebindAt: Infinity, expiresAt: Infinity };
  const seconds = Math.max(MIN_LEASE_S, raw ?? 3600);
  let t1 = u32(r.options.get(OPT.T1)) ?? seconds * 0.5;
  let t2 = u32(r.options.get(OPT.T2)) ?? seconds * 0.875;
  if (!(t2 < seconds && t2 > 0)) t2 = seconds * 0.875;
  if (!(t1 < t2 && t1 > 0)) t1 = seconds * 0.5 < t2 ? seconds * 0.5 : t2 / 2;
  return {
    seconds,
    renewAt: now + t1 * 1000,
    rebindAt: now + t2 * 1000,
    expiresAt: now + seconds * 1000,
  };
}

/** The lease an ACK grants, validated and bounded; an error string when it grants nothing usable. */
export function leaseFrom(
  r: DhcpReply,
  now: number,
  fallbackServer: string | null,
): Lease | { error: string } {
  if (!isUnicast(r.yiaddr)) return { error: `ACK offers ${r.yiaddr}, not a host address` };
  const server = serverId(r) ?? fallbackServer;
  if (!server) return { error: "ACK names no server (option 54)" };
  const prefix = maskPrefix(r.options.get(OPT.SUBNET), r.yiaddr);
  const lease: Lease = {
    address: r.yiaddr,
    prefix,
    server,
    dns: addrList(r.options.get(OPT.DNS), MAX_DNS),
    search: decodeSearch(r.options.get(OPT.SEARCH)),
    obtainedAt: now,
    ...timers(r, now),
  };
  const router = addrList(r.options.get(OPT.ROUTER), MAX_ROUTERS)[0];
  if (router && router !== r.yiaddr) lease.router = router;
  const domain = text(r.options.get(OPT.DOMAIN));
  if (lease.search.length === 0 && domain) lease.search = [domain];
  const mtuV = r.options.get(OPT.MTU);
  if (mtuV?.length === 2) {
    const mtu = ((mtuV[0] as number) << 8) | (mtuV[1] as number);
    if (mtu >= 576) lease.mtu = mtu;
  }
  const hostname = text(r.options.get(OPT.HOSTNAME));
  if (hostname) lease.hostname = hostname;
  return lease;
}

/** resolv.conf text for a lease (null when it names no server). Names are validated, so no line can be injected. */
export function leaseResolvConf(lease: Lease, search: string[]): string | null {
  if (lease.dns.length === 0) return null;
  const lines = ["# written by hero-init (DHCP)", ...lease.dns.map((d) => `nameserver ${d}`)];
  const s = search.length ? search : lease.search;
  if (s.length) lines.push(`search ${s.join(" ")}`);
  return `${lines.join("\n")}\n`;
}
