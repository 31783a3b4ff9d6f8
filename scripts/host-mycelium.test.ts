import { describe, expect, test } from "bun:test";
import { hasNetAdmin, nodeArgv } from "./host-mycelium.ts";

const opts = {
  keyFile: "/k",
  tun: "hero-demo",
  port: 9651,
  apiAddr: "127.0.0.1:1",
  jsonrpcAddr: "127.0.0.1:2",
  logFile: "/l",
};

describe("hasNetAdmin", () => {
  test("reads bit 12 of CapEff", () => {
    expect(hasNetAdmin("Name:\tx\nCapEff:\t000001ffffffffff\n")).toBe(true);
    expect(hasNetAdmin("CapEff:\t0000000000001000\n")).toBe(true);
    expect(hasNetAdmin("CapEff:\t0000000000000fff\n")).toBe(false);
    expect(hasNetAdmin("CapEff:\t0000000000000000\n")).toBe(false);
    expect(hasNetAdmin("Name:\tx\n")).toBe(false);
  });
});

describe("nodeArgv", () => {
  test("ports, APIs, no discovery; --peers last; in a namespace through ip netns exec", () => {
    expect(nodeArgv("/m", { ...opts, peers: ["tcp://10.0.0.1:9651"], netns: "ns1" })).toEqual([
      "ip",
      "netns",
      "exec",
      "ns1",
      "/m",
      "-k",
      "/k",
      "--tun-name",
      "hero-demo",
      "--tcp-listen-port",
      "9651",
      "--quic-listen-port",
      "9651",
      "--api-addr",
      "127.0.0.1:1",
      "--jsonrpc-addr",
      "127.0.0.1:2",
      "--disable-peer-discovery",
      "--peers",
      "tcp://10.0.0.1:9651",
    ]);
    expect(nodeArgv("/m", opts)).not.toContain("--peers");
    expect(nodeArgv("/m", opts)[0]).toBe("/m");
  });
  test("refuses a TUN name Linux would refuse", () => {
    expect(() => nodeArgv("/m", { ...opts, tun: "a-very-long-tun-name" })).toThrow(
      'TUN name "a-very-long-tun-name"',
    );
    expect(() => nodeArgv("/m", { ...opts, tun: "a b" })).toThrow('TUN name "a b"');
  });
});
