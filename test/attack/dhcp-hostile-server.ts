/**
 * A hostile DHCP server for test/attack/dhcp.test.ts, run in the server's
 * network namespace: `bun dhcp-hostile-server.ts`. To every request it
 * answers with a reply full of poison, then floods junk (random bytes,
 * truncated and overlong replies, wrong xids, wrong hardware addresses). The
 * poison: a domain and host name carrying a newline and a nameserver line,
 * a search list whose compression pointer loops, a thousand routers and
 * name servers, and lease, T1 and T2 all 0. Prints "REQUEST <type>" per
 * request it gets.
 */
import { createSocket } from "node:dgram";
import { rng } from "../fuzz/rng.ts";
import { buildReply, ip, parseRequest, u32 } from "../helpers/dhcp-reply.ts";

const r = rng(18);
const chars = (s: string) => [...s].map((c) => c.charCodeAt(0));
const evilName = chars("evil.lan\nnameserver 6.6.6.6");

/** Option `code` with `values` split into ≤ 252-byte chunks (RFC 3396 concatenation). */
function chunked(code: number, values: number[]): [number, number[]][] {
  const out: [number, number[]][] = [];
  for (let i = 0; i < values.length; i += 252) out.push([code, values.slice(i, i + 252)]);
  return out;
}

function poison(type: number, xid: number, mac: Uint8Array): Uint8Array {
  const dns = [...ip("10.77.0.53"), ...ip("10.77.0.54"), ...ip("10.77.0.55")];
  for (let i = 0; i < 1000; i++) dns.push(...ip("6.6.6.6"));
  const routers: number[] = [];
  for (let i = 0; i < 1000; i++) routers.push(...ip(`10.77.${(i >> 8) & 255}.${i & 255 || 1}`));
  return buildReply({
    type,
    xid,
    mac,
    yiaddr: "10.77.0.66",
    options: [
      [54, ip("10.77.0.1")],
      [1, ip("255.255.255.0")],
      [51, u32(0)],
      [58, u32(0)],
      [59, u32(0)],
      [15, evilName],
      [12, chars("host\nnameserver 6.6.6.6")],
      [119, [3, ...chars("lan"), 0xc0, 0]],
      ...chunked(6, dns),
      ...chunked(3, routers),
    ],
  });
}

function junk(xid: number, mac: Uint8Array): Uint8Array {
  const valid = poison(5, xid, mac);
  switch (r.int(5)) {
    case 0:
      return r.bytes(r.int(1500));
    case 1:
      return valid.subarray(0, r.int(valid.length));
    case 2:
      return buildReply({
        type: 5,
        xid: xid ^ 1,
        mac,
        yiaddr: "10.77.0.99",
        options: [[54, ip("10.77.0.1")]],
      });
    case 3:
      return buildReply({
        type: 2,
        xid,
        mac: Uint8Array.from([6, 6, 6, 6, 6, 6]),
        yiaddr: "10.77.0.98",
        options: [[54, ip("10.77.0.1")]],
      });
    default: {
      const big = new Uint8Array(9000 + r.int(50000));
      big.set(valid);
      return big;
    }
  }
}

const sock = createSocket({ type: "udp4", reuseAddr: true });
sock.on("message", (msg) => {
  const req = new Uint8Array(msg);
  if (req.length < 240 || req[0] !== 1) return;
  const { xid, type } = parseRequest(req);
  const mac = req.slice(28, 34);
  console.log(`REQUEST ${type}`);
  const send = (b: Uint8Array) => sock.send(b, 68, "255.255.255.255");
  // The poisoned answer first: a flood in front of it would only overflow
  // the client's receive buffer, and the poison must arrive to be tested.
  send(poison(type === 1 ? 2 : 5, xid, mac));
  for (let i = 0; i < 500; i++) send(junk(xid, mac));
});
sock.bind(67, "0.0.0.0", () => {
  sock.setBroadcast(true);
  console.log("LISTENING");
});
