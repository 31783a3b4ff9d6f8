/**
 * A stand-in for mycelium, for tests only (never shipped): the real binary
 * is distributed only as GitHub release archives, unreachable here. It
 * honours the interface hero-init relies on (docs: ../shared/reference/mycelium.md):
 *   mycelium [-k KEYFILE] [--peers URI...] [--tun-name NAME] [--api-addr ADDR] [other flags ignored]
 * - the key file: 32 raw bytes, created (0640) on first start;
 * - a TUN device named as asked, MTU 1400, carrying the key-derived address /7, up;
 * - the admin API: GET /api/v1/admin, GET/POST /api/v1/admin/peers,
 *   DELETE /api/v1/admin/peers/{urlencoded endpoint}, with mycelium's JSON shapes;
 * - exits cleanly on SIGINT/SIGTERM.
 * It runs on hero-init's own runtime (BUN_BE_BUN=1), bundled into one file.
 */
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import ipaddr from "ipaddr.js";
import { addressOfKey, publicKeyOf, subnetOf } from "../../lib/mycelium.ts";
import { ioctl } from "../../sys/ffi.ts";
import { addIpv6, linkUp, setMtu } from "../../sys/net.ts";

const args = process.argv.slice(2);
let keyFile = "priv_key.bin";
let tunName = "mycelium";
let apiAddr = "127.0.0.1:8989";
const peers = new Map<string, { proto: string; socketAddr: string }>();
const peerRe = /^(tcp|quic):\/\/(.+)$/;
for (let i = 0; i < args.length; i++) {
  const a = args[i] as string;
  if (a === "-k" || a === "--key-file") keyFile = args[++i] as string;
  else if (a === "--tun-name") tunName = args[++i] as string;
  else if (a === "--api-addr") apiAddr = args[++i] as string;
  else if (a === "--peers") {
    while (i + 1 < args.length && !(args[i + 1] as string).startsWith("-")) {
      const uri = args[++i] as string;
      const m = peerRe.exec(uri);
      if (!m) {
        console.error(`error: invalid peer ${uri}`);
        process.exit(2);
      }
      peers.set(uri, { proto: m[1] as string, socketAddr: m[2] as string });
    }
  }
}

if (!existsSync(keyFile)) {
  mkdirSync(dirname(keyFile), { recursive: true });
  writeFileSync(keyFile, crypto.getRandomValues(new Uint8Array(32)), { mode: 0o640 });
}
const key = new Uint8Array(readFileSync(keyFile));
const address = addressOfKey(key);
const started = Math.floor(Date.now() / 1000);

// TUN: TUNSETIFF with IFF_TUN | IFF_NO_PI; the fd stays open for the process's life.
const tun = openSync("/dev/net/tun", "r+");
const req = new Uint8Array(40);
req.set(new TextEncoder().encode(tunName), 0);
new DataView(req.buffer).setUint16(16, 0x0001 | 0x1000, true);
ioctl(tun, 0x400454ca, req, `TUNSETIFF ${tunName}`);
setMtu(tunName, 1400);
linkUp(tunName);
addIpv6(tunName, new Uint8Array(ipaddr.IPv6.parse(address).toByteArray()), 7);
console.log(`Node address: ${address} (stand-in), TUN ${tunName}, API ${apiAddr}`);

const [host, port] = apiAddr.startsWith("[")
  ? [apiAddr.slice(1, apiAddr.indexOf("]")), apiAddr.split("]:")[1]]
  : apiAddr.split(":");
const peerJson = () =>
  [...peers.values()].map((p) => ({
    endpoint: p,
    type: "static",
    connectionState: "connecting",
    txBytes: 0,
    rxBytes: 0,
  }));
Bun.serve({
  hostname: host,
  port: Number(port),
  async fetch(r) {
    const url = new URL(r.url);
    if (url.pathname === "/api/v1/admin" && r.method === "GET") {
      return Response.json({
        nodeSubnet: subnetOf(address),
        nodeIp: address,
        nodePubkey: Buffer.from(publicKeyOf(key)).toString("hex"),
        nodeStartTime: started,
      });
    }
    if (url.pathname === "/api/v1/admin/peers" && r.method === "GET")
      return Response.json(peerJson());
    if (url.pathname === "/api/v1/admin/peers" && r.method === "POST") {
      const body = (await r.json().catch(() => null)) as { endpoint?: string } | null;
      const m = body?.endpoint ? peerRe.exec(body.endpoint) : null;
      if (!m || !body?.endpoint) return new Response("invalid endpoint", { status: 400 });
      if (peers.has(body.endpoint)) return new Response("peer exists", { status: 409 });
      peers.set(body.endpoint, { proto: m[1] as string, socketAddr: m[2] as string });
      return new Response(null, { status: 204 });
    }
    if (url.pathname.startsWith("/api/v1/admin/peers/") && r.method === "DELETE") {
      const ep = decodeURIComponent(url.pathname.slice("/api/v1/admin/peers/".length));
      return new Response(null, { status: peers.delete(ep) ? 204 : 404 });
    }
    return new Response("not found", { status: 404 });
  },
});
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => process.exit(0));
