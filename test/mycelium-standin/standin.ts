/**
 * A stand-in for mycelium, for tests only (never shipped), written before
 * the real daemon could be built here and now held to it: one scenario runs
 * against both in test/integration/mycelium-real.test.ts (mycelium 0.7.10).
 * It honours the interface hero-init relies on:
 *   mycelium [-k KEYFILE] [--peers URI...] [--tun-name NAME] [--api-addr ADDR] [--no-tun] [other flags ignored]
 * - the key file: its first 32 bytes (an x25519 secret); created 0640 when
 *   missing, in a directory that must exist (as mycelium: it exits 1 otherwise);
 * - a peer URI mycelium would refuse on the command line: exit 2;
 * - a TUN device named as asked (unless --no-tun), MTU 1400, carrying the
 *   key-derived address /7, up;
 * - the admin API: GET /api/v1/admin, GET/POST /api/v1/admin/peers,
 *   DELETE /api/v1/admin/peers/{urlencoded endpoint}, with mycelium's JSON
 *   shapes, statuses and error texts;
 * - exits cleanly on SIGINT/SIGTERM.
 * It does not peer: a peer stays "connecting". It runs on hero-init's own
 * runtime (BUN_BE_BUN=1), bundled into one file.
 */
import { existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import ipaddr from "ipaddr.js";
import {
  addressOfKey,
  type PeerEndpoint,
  parsePeerUri,
  publicKeyOf,
  subnetOf,
} from "../../lib/mycelium.ts";
import { ioctl } from "../../sys/ffi.ts";
import { addIpv6, linkUp, setMtu } from "../../sys/net.ts";

const args = process.argv.slice(2);
let keyFile = "priv_key.bin";
let tunName = "mycelium";
let apiAddr = "127.0.0.1:8989";
let noTun = false;
const peers = new Map<string, PeerEndpoint>();

/** mycelium's text for a peer URI its parser refuses (mycelium/src/endpoint.rs). */
function refusalText(uri: string): string {
  const sep = uri.indexOf("://");
  if (sep < 0) return "missing leading protocol identifier";
  const proto = uri.slice(0, sep).toLowerCase();
  if (!["tcp", "quic", "tls", "vsock"].includes(proto))
    return "protocol for endpoint is not supported";
  if (proto !== "vsock") return "failed to parse address: invalid socket address syntax";
  return uri.includes(":", sep + 3)
    ? "failed to parse vsock address component: invalid digit found in string"
    : "vsock address must be in CID:PORT format";
}

/** An endpoint as Rust prints a SocketAddr (IPv4-mapped IPv6 dotted), keyed so equal endpoints match. */
function socketText(e: Extract<PeerEndpoint, { ip: string }>): string {
  if (!ipaddr.IPv6.isValid(e.ip)) return `${e.ip}:${e.port}`;
  const ip = ipaddr.IPv6.parse(e.ip);
  const text = ip.isIPv4MappedAddress() ? `::ffff:${ip.toIPv4Address().toString()}` : ip.toString();
  return `[${text}${e.scope === null ? "" : `%${e.scope}`}]:${e.port}`;
}
const endpointJson = (e: PeerEndpoint) => ({
  proto: e.proto,
  addr: e.proto === "vsock" ? { vsock: { cid: e.cid, port: e.port } } : { socket: socketText(e) },
});
const keyOf = (e: PeerEndpoint) => JSON.stringify(endpointJson(e));

for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  if (a === "-k" || a === "--key-file") keyFile = args[++i] as string;
  else if (a === "--tun-name") tunName = args[++i] as string;
  else if (a === "--api-addr") apiAddr = args[++i] as string;
  else if (a === "--no-tun") noTun = true;
  else if (a === "--peers") {
    while (i + 1 < args.length && !(args[i + 1] as string).startsWith("-")) {
      const uri = args[++i] as string;
      const e = parsePeerUri(uri);
      if (!e) {
        console.error(
          `error: invalid value '${uri}' for '--peers <STATIC_PEERS>...': ${refusalText(uri)}`,
        );
        process.exit(2);
      }
      peers.set(keyOf(e), e);
    }
  }
}

if (!existsSync(keyFile)) {
  if (!existsSync(dirname(keyFile))) {
    console.error(`Error: No such file or directory (${dirname(keyFile)})`);
    process.exit(1);
  }
  writeFileSync(keyFile, crypto.getRandomValues(new Uint8Array(32)), { mode: 0o640 });
}
const key = new Uint8Array(readFileSync(keyFile)).slice(0, 32);
if (key.length < 32) {
  console.error(`Error: early eof (${keyFile} is ${key.length} bytes)`);
  process.exit(1);
}
const address = addressOfKey(key);
const started = Math.floor(Date.now() / 1000);

// TUN: TUNSETIFF with IFF_TUN | IFF_NO_PI; the fd stays open for the process's life.
if (!noTun) {
  const tun = openSync("/dev/net/tun", "r+");
  const req = new Uint8Array(40);
  req.set(new TextEncoder().encode(tunName), 0);
  new DataView(req.buffer).setUint16(16, 0x0001 | 0x1000, true);
  ioctl(tun, 0x400454ca, req, `TUNSETIFF ${tunName}`);
  setMtu(tunName, 1400);
  linkUp(tunName);
  addIpv6(tunName, new Uint8Array(ipaddr.IPv6.parse(address).toByteArray()), 7);
}
console.log(
  `Node address: ${address} (stand-in), ${noTun ? "no TUN" : `TUN ${tunName}`}, API ${apiAddr}`,
);

const peerJson = () =>
  [...peers.values()].map((e) => ({
    endpoint: endpointJson(e),
    type: "static",
    connectionState: "connecting",
    txBytes: 0,
    rxBytes: 0,
    discovered: 0,
    lastConnected: null,
  }));
const text = (status: number, body = "") => new Response(body || null, { status });

/** POST /api/v1/admin/peers, as mycelium (axum's JSON extractor, then the endpoint parser). */
async function addPeer(r: Request): Promise<Response> {
  let body: unknown;
  try {
    body = JSON.parse(await r.text());
  } catch (e) {
    return text(400, `Failed to parse the request body as JSON: ${(e as Error).message}`);
  }
  const endpoint = (body as { endpoint?: unknown } | null)?.endpoint;
  if (typeof endpoint !== "string")
    return text(
      422,
      "Failed to deserialize the JSON body into the target type: missing field `endpoint`",
    );
  const e = parsePeerUri(endpoint);
  if (!e) return text(400, refusalText(endpoint));
  if (peers.has(keyOf(e))) return text(409, "A peer identified by that endpoint already exists");
  peers.set(keyOf(e), e);
  return text(204);
}

/** DELETE /api/v1/admin/peers/{endpoint}. */
function removePeer(raw: string): Response {
  const endpoint = decodeURIComponent(raw);
  const e = parsePeerUri(endpoint);
  if (!e) return text(400, refusalText(endpoint));
  if (!peers.delete(keyOf(e)))
    return text(404, "A peer identified by that endpoint does not exist");
  return text(204);
}

const [host, port] = apiAddr.startsWith("[")
  ? [apiAddr.slice(1, apiAddr.indexOf("]")), apiAddr.split("]:")[1]]
  : apiAddr.split(":");
const PEERS = "/api/v1/admin/peers";
Bun.serve({
  hostname: host,
  port: Number(port),
  fetch(r) {
    const path = new URL(r.url).pathname;
    if (path === "/api/v1/admin" && r.method === "GET") {
      return Response.json({
        nodeSubnet: subnetOf(address),
        nodeIp: address,
        nodePubkey: Buffer.from(publicKeyOf(key)).toString("hex"),
        nodeStartTime: started,
      });
    }
    if (path === PEERS && r.method === "GET") return Response.json(peerJson());
    if (path === PEERS && r.method === "POST") return addPeer(r);
    if (path.startsWith(`${PEERS}/`) && r.method === "DELETE")
      return removePeer(path.slice(PEERS.length + 1));
    return text(404);
  },
});
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(0));
