/**
 * Fuzzing the DHCP client: the server is hostile input. Random and mutated
 * replies (truncated, overlong, bad option lengths, option overload, wrong
 * xid or MAC, absurd lease times, thousands of routers and name servers)
 * must never throw out of the decoder or the state machine, never keep more
 * than a bounded lease, and never make the client spin. Seeded and bounded.
 */
import { describe, expect, setDefaultTimeout, test } from "bun:test";
import { decodeReply, MSG } from "../../lib/dhcp.ts";
import { type DhcpAction, DhcpClient } from "../../lib/dhcp-client.ts";
import { buildReply, ip, parseRequest, u32 } from "../helpers/dhcp-reply.ts";
import { rng } from "./rng.ts";

const ROUNDS = 3000;
// Bounded work, but a loaded 2-core machine may take a while.
setDefaultTimeout(120_000);
const mac = Uint8Array.from([2, 0, 0, 0, 0, 7]);

/** A plausible reply with random (often absurd) values, for `xid`. */
function randomReply(r: ReturnType<typeof rng>, xid: number): Uint8Array {
  const options: [number, number[]][] = [];
  const n = r.int(12);
  for (let i = 0; i < n; i++) {
    const code = r.pick([1, 3, 6, 12, 15, 26, 51, 52, 54, 58, 59, 119, r.int(256)]);
    options.push([code, [...r.bytes(r.pick([0, 1, 2, 4, 8, r.int(256)]))]]);
  }
  if (r.int(2)) options.push([54, ip(`10.0.0.${1 + r.int(254)}`)]);
  if (r.int(2)) options.push([51, u32(r.pick([0, 1, 5, 0xffffffff, 0xfffffffe, r.int(100000)]))]);
  if (r.int(4) === 0)
    for (let i = 0; i < 20; i++) options.push([r.pick([3, 6]), [...r.bytes(252)]]);
  return buildReply({
    type: r.pick([MSG.OFFER, MSG.ACK, MSG.NAK, r.int(256)]),
    xid: r.int(8) === 0 ? r.int(0x100000000) : xid,
    mac: r.int(8) === 0 ? r.bytes(6) : mac,
    yiaddr:
      r.int(4) === 0
        ? [r.int(256), r.int(256), r.int(256), r.int(256)].join(".")
        : `10.0.0.${r.int(256)}`,
    options,
    noEnd: r.int(3) === 0,
    sname: r.int(4) === 0 ? [...r.bytes(64)] : undefined,
    file: r.int(4) === 0 ? [...r.bytes(128)] : undefined,
  });
}

/** Byte-level damage: truncate, extend, flip. */
function mutate(r: ReturnType<typeof rng>, b: Uint8Array): Uint8Array {
  const kind = r.int(4);
  if (kind === 0) return b.subarray(0, r.int(b.length + 1));
  if (kind === 1) return Uint8Array.from([...b, ...r.bytes(r.int(600))]);
  const out = b.slice();
  for (let i = 0; i < 1 + r.int(8); i++) out[r.int(out.length)] = r.int(256);
  return out;
}

function checkActions(acts: DhcpAction[], c: DhcpClient): void {
  expect(acts.length).toBeLessThanOrEqual(4);
  for (const a of acts) {
    if (a.kind === "bound") {
      expect(a.lease.dns.length).toBeLessThanOrEqual(3);
      expect(a.lease.search.length).toBeLessThanOrEqual(6);
      expect(a.lease.search.join("").length).toBeLessThanOrEqual(256);
      for (const s of [...a.lease.search, a.lease.hostname ?? ""]) expect(s).not.toMatch(/[\s\0]/);
      expect(a.lease.renewAt).toBeGreaterThan(a.lease.obtainedAt);
    }
  }
  if (c.lease) expect(c.lease.dns.length).toBeLessThanOrEqual(3);
}

describe("fuzz: DHCP", () => {
  test("decodeReply never throws on random bytes or damaged replies", () => {
    const r = rng(11);
    for (let i = 0; i < ROUNDS; i++) {
      const input = r.int(3) === 0 ? r.bytes(r.int(1200)) : mutate(r, randomReply(r, r.int(1000)));
      const d = decodeReply(input);
      expect("reply" in d || typeof d.error === "string").toBe(true);
    }
  });

  test("the client never throws, keeps bounded leases and never spins, whatever the server sends", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = rng(seed);
      const c = new DhcpClient({ mac, random: r.next });
      let now = 0;
      let xid = 0;
      let sent = 0;
      const take = (acts: DhcpAction[]) => {
        checkActions(acts, c);
        for (const a of acts)
          if (a.kind === "send") {
            sent++;
            xid = parseRequest(a.packet).xid;
          }
      };
      take(c.start(now));
      // One simulated hour: replies arrive at random moments, ticks when due.
      while (now < 3_600_000) {
        const wake = c.nextWake();
        const replyAt = now + r.int(20_000);
        if (wake <= replyAt) {
          now = Math.max(now, wake);
          take(c.tick(now));
          expect(c.nextWake()).toBeGreaterThan(now);
        } else {
          now = replyAt;
          const b = randomReply(r, xid);
          take(c.receive(r.int(3) === 0 ? mutate(r, b) : b, now));
        }
      }
      // A hostile server gets at most a few requests a second out of the client.
      expect(sent).toBeLessThan(3600 * 2);
    }
  });
});
