/**
 * Who may talk to hero-init's HTTP endpoints (UI, agent): loopback and the
 * mycelium overlay (400::/7) always, plus CIDRs the VM config adds. Pure.
 */
import ipaddr from "ipaddr.js";

/** The mycelium overlay range. */
export const MYCELIUM_RANGE = "400::/7";

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Parses CIDRs, throwing an Error naming the first invalid one. */
export function parseCidrs(cidrs: readonly string[]): Range[] {
  return cidrs.map((c) => {
    try {
      return c.includes("/")
        ? ipaddr.parseCIDR(c)
        : ([ipaddr.parse(c), ipaddr.parse(c).kind() === "ipv4" ? 32 : 128] as Range);
    } catch {
      throw new Error(`invalid CIDR "${c}"`);
    }
  });
}

const DEFAULT_RANGES = parseCidrs(["127.0.0.0/8", "::1/128", MYCELIUM_RANGE]);

/** `ip` parsed, an IPv4-mapped IPv6 address as IPv4; null when it is not an address. */
function clientAddress(ip: string | undefined | null): ipaddr.IPv4 | ipaddr.IPv6 | null {
  if (!ip || !ipaddr.isValid(ip)) return null;
  const addr = ipaddr.parse(ip);
  return addr.kind() === "ipv6" && (addr as ipaddr.IPv6).isIPv4MappedAddress()
    ? (addr as ipaddr.IPv6).toIPv4Address()
    : addr;
}

/** True if `ip` is an address inside one of `ranges`. */
function inRanges(ip: string | undefined | null, ranges: readonly Range[]): boolean {
  const addr = clientAddress(ip);
  return (
    addr !== null &&
    ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits))
  );
}

/** True if `ip` (as a server reports it; IPv4-mapped IPv6 allowed) is loopback, mycelium or in `extra`. */
export function isAllowedClient(
  ip: string | undefined | null,
  extra: readonly Range[] = [],
): boolean {
  return inRanges(ip, [...DEFAULT_RANGES, ...extra]);
}

/**
 * The agent's source check, shared by PID 1's check before the agent's code
 * loads and the agent's own middleware: null when `allow(ip)` holds, else
 * the 403's error and the log line. A policy that throws refuses.
 */
export function sourceRefusal(
  allow: (ip: string) => boolean,
  ip: string,
): { error: string; log: string } | null {
  let allowed = false;
  try {
    allowed = allow(ip);
  } catch {
    allowed = false;
  }
  if (allowed) return null;
  return {
    error: `source address ${ip || "(unknown)"} is not allowed`,
    log: `refused ${ip || "unknown address"}: not an allowed source`,
  };
}

/** The peer's address from a server's `requestIP`; "" when there is none or it throws (the policy then decides on ""). */
export function peerAddress(requestIP: () => { address: string } | null | undefined): string {
  try {
    return requestIP()?.address ?? "";
  } catch {
    return "";
  }
}

/** True if `ip` lies in 400::/7. */
export function isMyceliumAddress(ip: string): boolean {
  if (!ipaddr.IPv6.isValid(ip)) return false;
  const [net, bits] = ipaddr.parseCIDR(MYCELIUM_RANGE);
  return ipaddr.IPv6.parse(ip).match(net, bits);
}

/** True if `ip` lies in one of `ranges` (and nowhere else: no default range is added). */
export function isListedClient(ip: string | undefined | null, ranges: readonly Range[]): boolean {
  return inRanges(ip, ranges);
}

const LOOPBACK = parseCidrs(["127.0.0.0/8", "::1/128"]);

/** True if `ip` is a loopback address (IPv4-mapped IPv6 included). */
export function isLoopbackClient(ip: string | undefined | null): boolean {
  return inRanges(ip, LOOPBACK);
}
