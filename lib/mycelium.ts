/**
 * mycelium identities and peer URIs, computed exactly as mycelium (0.7.10,
 * checked against the real binary by test/integration/mycelium-real.test.ts)
 * does, so the host knows a VM's overlay address before it boots and a peer
 * the daemon would refuse is refused here first: the key file is 32 raw
 * bytes (an x25519 secret); the address is the first 16 bytes of blake3's
 * XOF over the x25519 public key, with byte 0 replaced by
 * 0x04 | (popcount(byte 0) & 1), which puts it in 400::/7; the node's subnet
 * is that address /64.
 */
import { createPrivateKey, createPublicKey, randomBytes } from "node:crypto";
import ipaddr from "ipaddr.js";
import { blake3 } from "./blake3.ts";
import { HeroError } from "./errors.ts";

/** A fresh key file's content: 32 random bytes. */
export function generateKey(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

// PKCS#8 wrapping of a raw X25519 private key (RFC 8410), so node:crypto can load it.
const PKCS8_X25519 = Buffer.from("302e020100300506032b656e04220420", "hex");

/** The x25519 public key of a 32-byte secret. */
export function publicKeyOf(secret: Uint8Array): Uint8Array {
  if (secret.length !== 32)
    throw new HeroError("mycelium-key", `a mycelium key is 32 bytes, got ${secret.length}`);
  const priv = createPrivateKey({
    key: Buffer.concat([PKCS8_X25519, secret]),
    format: "der",
    type: "pkcs8",
  });
  const jwk = createPublicKey(priv).export({ format: "jwk" }) as { x: string };
  return new Uint8Array(Buffer.from(jwk.x, "base64url"));
}

/** Pure: mycelium's address rule over a public key. */
export function addressOfPublicKey(pub: Uint8Array): string {
  const buf = blake3(pub, 16);
  let ones = 0;
  for (let b = buf[0] as number; b; b >>= 1) ones += b & 1;
  buf[0] = 0x04 | (ones & 1);
  return ipaddr.fromByteArray([...buf]).toString();
}

/** The overlay address of a key file's secret. */
export function addressOfKey(secret: Uint8Array): string {
  return addressOfPublicKey(publicKeyOf(secret));
}

/** Pure: the /64 node subnet of an address, as mycelium's admin API reports it. */
export function subnetOf(address: string): string {
  const b = ipaddr.IPv6.parse(address).toByteArray().slice(0, 8);
  return `${ipaddr.fromByteArray([...b, 0, 0, 0, 0, 0, 0, 0, 0]).toString()}/64`;
}

/** Pure: a node IP from a subnet like "54f:b680:ba6e:7ced::/64" (older mycelium has no nodeIp). */
export function ipFromSubnet(subnet: string): string {
  return subnet.split("/")[0] as string;
}

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
