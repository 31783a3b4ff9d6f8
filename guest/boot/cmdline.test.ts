import { describe, expect, test } from "bun:test";
import { applyCmdlineOverrides, cmdlineParams, parseIpParam, splitCmdline } from "./cmdline.ts";

describe("splitCmdline", () => {
  test("splits on whitespace and keeps double-quoted groups", () => {
    expect(splitCmdline(' console=ttyS0  foo="a b" x\n')).toEqual([
      "console=ttyS0",
      "foo=a b",
      "x",
    ]);
  });
  test("empty line gives no tokens", () => {
    expect(splitCmdline("   ")).toEqual([]);
  });
});

describe("cmdlineParams", () => {
  test("last value wins and flags map to empty string", () => {
    const p = cmdlineParams("quiet hero.hostname=a hero.hostname=b");
    expect(p.get("hero.hostname")).toBe("b");
    expect(p.get("quiet")).toBe("");
  });
});

describe("parseIpParam", () => {
  test("full static form", () => {
    expect(parseIpParam("10.0.2.15::10.0.2.2:255.255.255.0:vm1:eth0:off:10.0.2.3")).toEqual({
      address: "10.0.2.15/24",
      gateway: "10.0.2.2",
      hostname: "vm1",
      device: "eth0",
      dns: ["10.0.2.3"],
    });
  });
  test("netmask /20 and missing device", () => {
    expect(parseIpParam("192.168.16.9::192.168.16.1:255.255.240.0")).toMatchObject({
      address: "192.168.16.9/20",
    });
  });
  test("dhcp is refused with a clear reason", () => {
    expect(parseIpParam("dhcp")).toEqual({ error: expect.stringContaining("not supported") });
  });
  test("a non-contiguous netmask is an error", () => {
    expect(parseIpParam("10.0.0.2::10.0.0.1:255.0.255.0")).toEqual({
      error: expect.stringContaining("netmask"),
    });
  });
});

describe("applyCmdlineOverrides", () => {
  test("hero.* keys and ip= land in the raw config", () => {
    const raw: Record<string, unknown> = {
      hostname: "x",
      network: { interfaces: [{ name: "eth0", address: "1.1.1.1/8" }] },
    };
    const problems = applyCmdlineOverrides(
      raw,
      cmdlineParams(
        "hero.hostname=y hero.modules=tun,virtio_net hero.ui.port=8080 ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:off hero.bogus=1",
      ),
    );
    expect(raw.hostname).toBe("y");
    expect(raw.modules).toEqual(["tun", "virtio_net"]);
    expect(raw.ui).toEqual({ port: 8080 });
    expect(raw.network).toEqual({
      interfaces: [{ name: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2" }],
    });
    expect(problems).toEqual(["unknown parameter hero.bogus"]);
  });
});
