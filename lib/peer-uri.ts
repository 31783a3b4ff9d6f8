/**
 * mycelium peer URIs (pure), apart from lib/mycelium.ts so that vm.toml's
 * schema (evaluated by PID 1 before READY) does not pull in the key and
 * address code and its BLAKE3.
 */
import ipaddr from "ipaddr.js";

/** A peer endpoint as mycelium parses it: an IP socket address, or a vsock CID and port. */
export type PeerEndpoint =
  | { proto: "tcp" | "quic" | "tls"; ip: string; scope: number | null; port: number }
  | { proto: "vsock"; cid: number; port: number };

const U32_MAX = 0xffff_ffff;

/** Pure: a decimal number without sign or leading zeros, at most `max` (port 0 is refused: no peer listens there). */
function decimal(s: string | undefined, min: number, max: number): number | null {
  if (s === undefined || !/^(0|[1-9]\d{0,9})$/.test(s)) return null;
  const n = Number(s);
  return n >= min && n <= max ? n : null;
}

/** Pure: "1.2.3.4:5" or "[v6(%scope)]:5" as Rust's SocketAddr parser takes them (no names). */
function socketAddr(s: string): { ip: string; scope: number | null; port: number } | null {
  const v6 = /^\[([0-9A-Fa-f:.]+)(?:%(\d+))?\]:(\d+)$/.exec(s);
  if (v6) {
    const port = decimal(v6[3], 1, 65535);
    const scope = v6[2] === undefined ? null : decimal(v6[2], 0, U32_MAX);
    const ip = v6[1] as string;
    if (port === null || (v6[2] !== undefined && scope === null) || !ipaddr.IPv6.isValid(ip))
      return null;
    return { ip: ipaddr.IPv6.parse(ip).toString(), scope, port };
  }
  const v4 = /^([0-9.]+):(\d+)$/.exec(s);
  const p = decimal(v4?.[2], 1, 65535);
  if (!v4 || p === null || !ipaddr.IPv4.isValidFourPartDecimal(v4[1] as string)) return null;
  return { ip: v4[1] as string, scope: null, port: p };
}

/**
 * Pure: a peer URI as mycelium's Endpoint parser reads it, or null where
 * mycelium would refuse it: `tcp|quic|tls://IP:PORT` (IPv6 in brackets; the
 * protocol in any case) or `vsock://CID:PORT`. Host names are refused: the
 * daemon takes only addresses (a named peer on its command line stops it
 * from starting). Port 0 is refused here though mycelium parses it.
 */
export function parsePeerUri(uri: string): PeerEndpoint | null {
  const sep = uri.indexOf("://");
  if (sep < 0) return null;
  const proto = uri.slice(0, sep).toLowerCase();
  const rest = uri.slice(sep + 3);
  if (proto === "vsock") {
    const m = /^(\d+):(\d+)$/.exec(rest);
    const cid = decimal(m?.[1], 0, U32_MAX);
    const port = decimal(m?.[2], 1, U32_MAX);
    return cid === null || port === null ? null : { proto, cid, port };
  }
  if (proto !== "tcp" && proto !== "quic" && proto !== "tls") return null;
  const addr = socketAddr(rest);
  return addr ? { proto, ...addr } : null;
}

/** Pure: whether mycelium would take `uri` as a peer (see parsePeerUri). */
export function isPeerUri(uri: string): boolean {
  return parsePeerUri(uri) !== null;
}
