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

/** What the agent answers (403) to a source it does not allow: the one wording for PID 1's check and the agent's. */
export function refusedSource(ip: string): string {
  return `source address ${ip || "(unknown)"} is not allowed`;
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
