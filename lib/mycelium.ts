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

export { isPeerUri, parsePeerUri } from "./peer-uri.ts";
