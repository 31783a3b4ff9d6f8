import { describe, expect, test } from "bun:test";
import { rng } from "../test/fuzz/rng.ts";
import { buildReply, ip, parseRequest, u32 } from "../test/helpers/dhcp-reply.ts";
import { MSG } from "./dhcp.ts";
import { type DhcpAction, DhcpClient } from "./dhcp-client.ts";

const mac = Uint8Array.from([2, 0, 0, 0, 0, 1]);
const SERVER = "10.0.0.1";

function client() {
  return new DhcpClient({ mac, random: rng(7).next });
}

function sends(actions: DhcpAction[]) {
  return actions.flatMap((a) =>
    a.kind === "send" ? [{ ...parseRequest(a.packet), to: a.to, packet: a.packet }] : [],
  );
}

function reply(
  type: number,
  xid: number,
  options: [number, number[]][] = [],
  yiaddr = "10.0.0.50",
) {
  return buildReply({ type, xid, mac, yiaddr, options: [[54, ip(SERVER)], ...options] });
}

const LEASE_OPTS: [number, number[]][] = [
  [1, ip("255.255.255.0")],
  [3, ip(SERVER)],
  [6, ip("10.0.0.53")],
  [51, u32(100)],
  [58, u32(50)],
  [59, u32(80)],
];

/** Drives a client to BOUND at t=0; returns it. */
function bound() {
  const c = client();
  const [discover] = sends(c.start(0));
  const [request] = sends(c.receive(reply(MSG.OFFER, discover?.xid ?? 0), 10));
  const acts = c.receive(reply(MSG.ACK, request?.xid ?? 0, LEASE_OPTS), 0);
  expect(acts.map((a) => a.kind)).toEqual(["bound"]);
  return c;
}

describe("DhcpClient", () => {
  test("DISCOVER → OFFER → REQUEST → ACK binds the lease, with renewal at T1", () => {
    const c = client();
    const [discover] = sends(c.start(0));
    expect(discover).toMatchObject({ type: MSG.DISCOVER, to: "255.255.255.255" });
    expect(c.state).toBe("selecting");
    const [request] = sends(c.receive(reply(MSG.OFFER, discover?.xid ?? 0), 5));
    expect(request).toMatchObject({ type: MSG.REQUEST, xid: discover?.xid, to: "255.255.255.255" });
    expect(request?.opts.get(50)).toEqual(ip("10.0.0.50"));
    expect(request?.opts.get(54)).toEqual(ip(SERVER));
    const acts = c.receive(reply(MSG.ACK, request?.xid ?? 0, LEASE_OPTS), 10);
    expect(acts).toEqual([
      {
        kind: "bound",
        previous: null,
        lease: expect.objectContaining({
          address: "10.0.0.50",
          prefix: 24,
          router: SERVER,
          dns: ["10.0.0.53"],
        }),
      },
    ]);
    expect(c.state).toBe("bound");
    expect(c.nextWake()).toBe(10 + 50_000);
    expect(c.awaitingReply()).toBe(false);
  });

  test("replies with another xid or another hardware address are ignored", () => {
    const c = client();
    const [discover] = sends(c.start(0));
    const xid = discover?.xid ?? 0;
    expect(c.receive(reply(MSG.OFFER, xid + 1), 1)).toEqual([]);
    const other = buildReply({
      type: MSG.OFFER,
      xid,
      mac: Uint8Array.from([9, 9, 9, 9, 9, 9]),
      yiaddr: "10.0.0.9",
      options: [[54, ip(SERVER)]],
    });
    expect(c.receive(other, 1)).toEqual([]);
    expect(c.receive(reply(MSG.ACK, xid, LEASE_OPTS), 1)).toEqual([]); // an ACK while selecting
    expect(c.state).toBe("selecting");
  });

  test("DISCOVER is retransmitted with exponential backoff, capped at a minute", () => {
    const c = client();
    c.start(0);
    const gaps: number[] = [];
    let now = 0;
    for (let i = 0; i < 9; i++) {
      const next = c.nextWake();
      gaps.push(next - now);
      now = next;
      expect(sends(c.tick(now))).toHaveLength(1);
    }
    // 2 s doubling to 64 s, each ±0.5 s of jitter (so clients do not retry in step).
    const bases = [2000, 4000, 8000, 16000, 32000, 64000, 64000, 64000, 64000];
    for (const [i, g] of gaps.entries())
      expect(Math.abs(g - (bases[i] as number))).toBeLessThanOrEqual(500);
    expect(c.tick(now)).toEqual([]); // not due: nothing
  });

  test("no ACK after four REQUESTs: back to discovery with a new xid", () => {
    const c = client();
    const [discover] = sends(c.start(0));
    const [req] = sends(c.receive(reply(MSG.OFFER, discover?.xid ?? 0), 0));
    const types: number[] = [];
    for (let i = 0; i < 4; i++) {
      const out = sends(c.tick(c.nextWake()));
      types.push(...out.map((s) => s.type));
      if (out[0]?.type === MSG.DISCOVER) expect(out[0].xid).not.toBe(req?.xid);
    }
    expect(types).toEqual([MSG.REQUEST, MSG.REQUEST, MSG.REQUEST, MSG.DISCOVER]);
    expect(c.state).toBe("selecting");
  });

  test("T1: renew by unicast with ciaddr; the ACK extends the lease", () => {
    const c = bound();
    const [renew] = sends(c.tick(50_000));
    expect(c.state).toBe("renewing");
    expect(renew).toMatchObject({ type: MSG.REQUEST, to: SERVER });
    expect([...(renew?.packet.subarray(12, 16) ?? [])]).toEqual(ip("10.0.0.50"));
    expect(renew?.opts.has(50)).toBe(false);
    const acts = c.receive(reply(MSG.ACK, renew?.xid ?? 0, LEASE_OPTS), 50_100);
    expect(acts[0]).toMatchObject({ kind: "bound", previous: { address: "10.0.0.50" } });
    expect(c.nextWake()).toBe(50_100 + 50_000);
  });

  test("no answer: rebind by broadcast at T2, then at expiry the lease is dropped and discovery starts", () => {
    const c = bound();
    c.tick(50_000);
    const sent: string[] = [];
    let acts: DhcpAction[] = [];
    while (c.state !== "selecting") {
      acts = c.tick(c.nextWake());
      sent.push(...sends(acts).map((s) => `${s.type}@${s.to}`));
    }
    expect(sent).toContain(`${MSG.REQUEST}@${SERVER}`);
    expect(sent).toContain(`${MSG.REQUEST}@255.255.255.255`);
    expect(acts[0]).toMatchObject({ kind: "unbound", reason: "the lease expired" });
    expect(sends(acts)[0]?.type).toBe(MSG.DISCOVER);
    expect(c.lease).toBeNull();
    expect(sent.length).toBeLessThan(20);
  });

  test("a NAK while renewing drops the lease, waits, then discovers", () => {
    const c = bound();
    const [renew] = sends(c.tick(50_000));
    const acts = c.receive(reply(MSG.NAK, renew?.xid ?? 0), 50_001);
    expect(acts.map((a) => a.kind)).toEqual(["log", "unbound"]);
    expect(c.state).toBe("init");
    expect(c.nextWake()).toBeGreaterThan(50_001);
    expect(sends(c.tick(c.nextWake()))[0]?.type).toBe(MSG.DISCOVER);
  });

  test("a NAK from another server while requesting is ignored", () => {
    const c = client();
    const [discover] = sends(c.start(0));
    const [req] = sends(c.receive(reply(MSG.OFFER, discover?.xid ?? 0), 0));
    const nak = buildReply({
      type: MSG.NAK,
      xid: req?.xid ?? 0,
      mac,
      options: [[54, ip("10.0.0.99")]],
    });
    expect(c.receive(nak, 1)).toEqual([]);
    expect(c.state).toBe("requesting");
  });

  test("an infinite lease is never renewed", () => {
    const c = client();
    const [discover] = sends(c.start(0));
    const [req] = sends(c.receive(reply(MSG.OFFER, discover?.xid ?? 0), 0));
    c.receive(reply(MSG.ACK, req?.xid ?? 0, [[51, u32(0xffffffff)]]), 0);
    expect(c.state).toBe("bound");
    expect(c.nextWake()).toBe(Infinity);
  });
});
