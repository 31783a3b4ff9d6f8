import { describe, expect, test } from "bun:test";
import { buildReply, ip, parseRequest, u32 } from "../test/helpers/dhcp-reply.ts";
import {
  decodeReply,
  decodeSearch,
  encodeRequest,
  type Lease,
  leaseFrom,
  leaseResolvConf,
  MAX_REPLY,
  MIN_LEASE_S,
  MSG,
} from "./dhcp.ts";

const mac = Uint8Array.from([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

function ack(options: [number, number[]][], yiaddr = "10.0.2.15") {
  const d = decodeReply(buildReply({ type: MSG.ACK, xid: 7, mac, yiaddr, options }));
  if ("error" in d) throw new Error(d.error);
  return d.reply;
}

/** The lease an ACK with `options` and server id 10.0.2.2 grants at `now`. */
function leaseOf(options: [number, number[]][], now = 0): Lease {
  return leaseFrom(ack([...options, [54, ip("10.0.2.2")]]), now, null) as Lease;
}

const bytes = (s: string) => [...s].map((c) => c.charCodeAt(0));

describe("encodeRequest", () => {
  test("a DISCOVER is a 300-byte BOOTREQUEST with the broadcast flag, our MAC and the options we need", () => {
    const p = encodeRequest({
      type: MSG.DISCOVER,
      xid: 0xdeadbeef,
      mac,
      secs: 3.7,
      hostname: "vm1",
    });
    expect(p.length).toBe(300);
    const dv = new DataView(p.buffer);
    expect([p[0], p[1], p[2]]).toEqual([1, 1, 6]);
    expect(dv.getUint16(8)).toBe(3);
    expect(dv.getUint16(10)).toBe(0x8000);
    expect([...p.subarray(28, 34)]).toEqual([...mac]);
    const r = parseRequest(p);
    expect(r.xid).toBe(0xdeadbeef);
    expect(r.type).toBe(MSG.DISCOVER);
    expect(r.opts.get(55)).toEqual(expect.arrayContaining([1, 3, 6, 15, 26, 51, 58, 59, 119]));
    expect(String.fromCharCode(...(r.opts.get(12) ?? []))).toBe("vm1");
    expect(r.opts.has(50)).toBe(false);
  });
  test("a REQUEST names the offer and server; a renewal carries ciaddr instead", () => {
    const sel = parseRequest(
      encodeRequest({
        type: MSG.REQUEST,
        xid: 1,
        mac,
        secs: 0,
        requestedIp: "10.0.2.15",
        serverId: "10.0.2.2",
      }),
    );
    expect(sel.opts.get(50)).toEqual(ip("10.0.2.15"));
    expect(sel.opts.get(54)).toEqual(ip("10.0.2.2"));
    const renew = encodeRequest({ type: MSG.REQUEST, xid: 1, mac, secs: 0, ciaddr: "10.0.2.15" });
    expect([...renew.subarray(12, 16)]).toEqual(ip("10.0.2.15"));
    expect(parseRequest(renew).opts.has(50)).toBe(false);
  });
  test("an invalid host name is not sent", () => {
    const p = encodeRequest({ type: MSG.DISCOVER, xid: 1, mac, secs: 0, hostname: "bad\nname" });
    expect(parseRequest(p).opts.has(12)).toBe(false);
  });
});

describe("decodeReply", () => {
  test("reads the header fields and the options, concatenating a repeated option (RFC 3396)", () => {
    const d = decodeReply(
      buildReply({
        type: MSG.OFFER,
        xid: 42,
        mac,
        yiaddr: "192.168.1.9",
        options: [
          [6, ip("1.1.1.1")],
          [6, ip("8.8.8.8")],
        ],
      }),
    );
    expect("reply" in d && d.reply).toMatchObject({
      xid: 42,
      yiaddr: "192.168.1.9",
      type: MSG.OFFER,
    });
    if ("reply" in d)
      expect([...(d.reply.options.get(6) ?? [])]).toEqual([...ip("1.1.1.1"), ...ip("8.8.8.8")]);
  });
  test("option overload (52) reads options from file, then sname", () => {
    const d = decodeReply(
      buildReply({
        type: MSG.ACK,
        xid: 1,
        mac,
        options: [[52, [3]]],
        file: [3, 4, ...ip("10.0.0.1"), 255],
        sname: [6, 4, ...ip("10.0.0.53"), 255],
      }),
    );
    if (!("reply" in d)) throw new Error(d.error);
    expect([...(d.reply.options.get(3) ?? [])]).toEqual(ip("10.0.0.1"));
    expect([...(d.reply.options.get(6) ?? [])]).toEqual(ip("10.0.0.53"));
  });
  test("refuses, with a reason, what is not a well-formed reply", () => {
    const good = buildReply({ type: MSG.ACK, xid: 1, mac });
    expect(decodeReply(good.subarray(0, 100))).toEqual({
      error: expect.stringContaining("shorter"),
    });
    expect(decodeReply(new Uint8Array(MAX_REPLY + 1))).toEqual({
      error: expect.stringContaining("longer"),
    });
    const req = good.slice();
    req[0] = 1;
    expect(decodeReply(req)).toEqual({ error: expect.stringContaining("BOOTREPLY") });
    const noMagic = good.slice();
    noMagic[236] = 0;
    expect(decodeReply(noMagic)).toEqual({ error: "no DHCP magic cookie" });
    const truncated = buildReply({
      type: MSG.ACK,
      xid: 1,
      mac,
      options: [[6, ip("1.1.1.1")]],
      noEnd: true,
    });
    expect(decodeReply(truncated.subarray(0, truncated.length - 2))).toEqual({
      error: expect.stringContaining("option 6 claims 4 bytes"),
    });
    expect(
      decodeReply(buildReply({ type: MSG.ACK, xid: 1, mac, options: [[53, [5, 5]]] })),
    ).toEqual({
      error: expect.stringContaining("message type"),
    });
  });
});

describe("leaseFrom", () => {
  test("a typical ACK: address, prefix, router, DNS, search, MTU, host name and timers", () => {
    const lease = leaseOf(
      [
        [1, ip("255.255.255.0")],
        [3, ip("10.0.2.2")],
        [6, [...ip("10.0.2.3"), ...ip("10.0.2.4")]],
        [15, bytes("lan")],
        [26, [0x05, 0xdc]],
        [12, bytes("vm-7")],
        [51, u32(3600)],
      ],
      1000,
    );
    expect(lease).toEqual({
      address: "10.0.2.15",
      prefix: 24,
      server: "10.0.2.2",
      router: "10.0.2.2",
      dns: ["10.0.2.3", "10.0.2.4"],
      search: ["lan"],
      mtu: 1500,
      hostname: "vm-7",
      seconds: 3600,
      obtainedAt: 1000,
      renewAt: 1000 + 1800_000,
      rebindAt: 1000 + 3150_000,
      expiresAt: 1000 + 3600_000,
    });
    expect(leaseResolvConf(lease, [])).toBe(
      "# written by hero-init (DHCP)\nnameserver 10.0.2.3\nnameserver 10.0.2.4\nsearch lan\n",
    );
    expect(leaseResolvConf(lease, ["corp"])).toContain("search corp\n");
  });
  test("T1/T2 from the server are used when they are in order; nonsense falls back to 0.5/0.875", () => {
    const l = leaseOf([
      [51, u32(120)],
      [58, u32(4)],
      [59, u32(8)],
    ]);
    expect([l.renewAt, l.rebindAt, l.expiresAt]).toEqual([4000, 8000, 120_000]);
    const bad = leaseOf([
      [51, u32(100)],
      [58, u32(500)],
      [59, u32(0)],
    ]);
    expect([bad.renewAt, bad.rebindAt]).toEqual([50_000, 87_500]);
  });
  test("absurd lease times: 0 is raised to the minimum, 0xffffffff never expires", () => {
    const zero = leaseOf([[51, u32(0)]]);
    expect(zero.seconds).toBe(MIN_LEASE_S);
    expect(zero.renewAt).toBeGreaterThan(0);
    const inf = leaseOf([[51, u32(0xffffffff)]]);
    expect([inf.renewAt, inf.expiresAt]).toEqual([Infinity, Infinity]);
  });
  test("no server id falls back to the one we selected; a non-host address is refused", () => {
    expect(leaseFrom(ack([]), 0, "10.0.2.2")).toMatchObject({ server: "10.0.2.2", prefix: 8 });
    expect(leaseFrom(ack([]), 0, null)).toEqual({ error: expect.stringContaining("no server") });
    expect(leaseFrom(ack([[54, ip("10.0.2.2")]], "255.255.255.255"), 0, null)).toEqual({
      error: expect.stringContaining("not a host address"),
    });
  });
  test("bad masks, short MTUs, broadcast DNS and names with newlines are dropped", () => {
    const l = leaseFrom(
      ack(
        [
          [1, ip("255.0.255.0")],
          [6, [...ip("255.255.255.255"), ...ip("0.0.0.0"), ...ip("9.9.9.9")]],
          [26, [0, 100]],
          [15, bytes("x\nnameserver 6.6.6.6")],
          [12, bytes("a b")],
          [54, ip("192.168.7.1")],
        ],
        "192.168.7.20",
      ),
      0,
      null,
    ) as Lease;
    expect(l).toMatchObject({ prefix: 24, dns: ["9.9.9.9"], search: [] });
    expect(l.mtu).toBeUndefined();
    expect(l.hostname).toBeUndefined();
  });
});

describe("decodeSearch (option 119)", () => {
  const label = (s: string) =>
    s.split(".").flatMap((p) => [p.length, ...[...p].map((c) => c.charCodeAt(0))]);
  test("names with compression pointers", () => {
    // "eng.example.com", then "example.com" by pointer to offset 4.
    const v = Uint8Array.from([...label("eng.example.com"), 0, 0xc0, 4]);
    expect(decodeSearch(v)).toEqual(["eng.example.com", "example.com"]);
  });
  test("a pointer to itself or forwards ends the list instead of looping", () => {
    expect(decodeSearch(Uint8Array.from([0xc0, 0]))).toEqual([]);
    expect(decodeSearch(Uint8Array.from([...label("a"), 0, 0xc0, 10]))).toEqual(["a"]);
  });
  test("at most six names are kept", () => {
    const v = Uint8Array.from(Array.from({ length: 40 }, (_, i) => [...label(`d${i}`), 0]).flat());
    expect(decodeSearch(v)).toHaveLength(6);
  });
});
