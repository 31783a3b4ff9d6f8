import { describe, expect, test } from "bun:test";
import {
  isAllowedClient,
  isListedClient,
  isLoopbackClient,
  isMyceliumAddress,
  parseCidrs,
  peerAddress,
  sourceRefusal,
} from "./net-acl.ts";

describe("client checks", () => {
  test("loopback and mycelium are allowed by default; other addresses only through `extra`", () => {
    for (const ip of ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "4ff:1::2", "5ab::1"])
      expect(isAllowedClient(ip)).toBe(true);
    for (const ip of ["10.0.2.2", "::ffff:10.0.2.2", "600::1", "fe80::1", "2001:db8::1"])
      expect(isAllowedClient(ip)).toBe(false);
    const extra = parseCidrs(["10.0.2.0/24", "2001:db8::1"]);
    expect(isAllowedClient("10.0.2.2", extra)).toBe(true);
    expect(isAllowedClient("::ffff:10.0.2.2", extra)).toBe(true);
    expect(isAllowedClient("2001:db8::1", extra)).toBe(true);
    expect(isAllowedClient("2001:db8::2", extra)).toBe(false);
    expect(isAllowedClient("10.0.3.1", extra)).toBe(false);
  });

  test("no address, or not an address, is refused", () => {
    for (const ip of ["", null, undefined, "localhost", "127.0.0.1:80", "999.1.1.1", "::1::2"])
      expect(isAllowedClient(ip)).toBe(false);
    expect(isListedClient("", parseCidrs(["0.0.0.0/0"]))).toBe(false);
    expect(isLoopbackClient("not-an-ip")).toBe(false);
  });

  test("a listed check adds no default range; the loopback check is loopback only", () => {
    const ranges = parseCidrs(["192.0.2.0/25"]);
    expect(isListedClient("192.0.2.7", ranges)).toBe(true);
    expect(isListedClient("::ffff:192.0.2.7", ranges)).toBe(true);
    expect(isListedClient("192.0.2.200", ranges)).toBe(false);
    expect(isListedClient("127.0.0.1", ranges)).toBe(false);
    expect(isLoopbackClient("::ffff:127.0.0.1")).toBe(true);
    expect(isLoopbackClient("::1")).toBe(true);
    expect(isLoopbackClient("4ff:1::2")).toBe(false);
  });

  test("an invalid CIDR is named", () => {
    expect(() => parseCidrs(["10.0.0.0/8", "10.0.0.0/33"])).toThrow('invalid CIDR "10.0.0.0/33"');
    expect(() => parseCidrs(["nope"])).toThrow('invalid CIDR "nope"');
  });

  test("mycelium addresses are 400::/7", () => {
    expect(isMyceliumAddress("400::1")).toBe(true);
    expect(isMyceliumAddress("5ff:ffff::1")).toBe(true);
    expect(isMyceliumAddress("600::1")).toBe(false);
    expect(isMyceliumAddress("10.0.2.2")).toBe(false);
  });
});

describe("the agent's source check", () => {
  test("an allowed source passes; a refused one gets the 403's error and the log line", () => {
    const allow = (ip: string) => ip === "127.0.0.1";
    expect(sourceRefusal(allow, "127.0.0.1")).toBeNull();
    expect(sourceRefusal(allow, "203.0.113.9")).toEqual({
      error: "source address 203.0.113.9 is not allowed",
      log: "refused 203.0.113.9: not an allowed source",
    });
    expect(sourceRefusal(allow, "")).toEqual({
      error: "source address (unknown) is not allowed",
      log: "refused unknown address: not an allowed source",
    });
  });

  test("a policy that throws refuses", () => {
    const refused = sourceRefusal(() => {
      throw new Error("bad policy");
    }, "127.0.0.1");
    expect(refused?.error).toBe("source address 127.0.0.1 is not allowed");
  });

  test("the peer's address: none, or a requestIP that throws, is empty", () => {
    expect(peerAddress(() => ({ address: "10.0.2.2" }))).toBe("10.0.2.2");
    expect(peerAddress(() => null)).toBe("");
    expect(peerAddress(() => undefined)).toBe("");
    expect(
      peerAddress(() => {
        throw new Error("closed");
      }),
    ).toBe("");
  });
});
