import { describe, expect, test } from "bun:test";
import { validateVmConfig } from "../../lib/vm-config.ts";
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
  test("ip=dhcp, and the long form with hostname and device, ask for DHCP", () => {
    expect(parseIpParam("dhcp")).toEqual({ dns: [], dhcp: true });
    expect(parseIpParam("on")).toEqual({ dns: [], dhcp: true });
    expect(parseIpParam("::::vm7:ens3:dhcp")).toEqual({
      dns: [],
      dhcp: true,
      hostname: "vm7",
      device: "ens3",
    });
    // A client address or gateway in the DHCP form is the lease's business: dropped.
    expect(parseIpParam("10.0.0.9::10.0.0.1:255.255.255.0::eth1:dhcp:1.1.1.1")).toEqual({
      dns: ["1.1.1.1"],
      dhcp: true,
      device: "eth1",
    });
  });
  test("bootp, rarp and unknown autoconf values are refused with a clear reason", () => {
    expect(parseIpParam("bootp")).toEqual({ error: expect.stringContaining("not supported") });
    expect(parseIpParam("rarp")).toEqual({ error: expect.stringContaining("ip=dhcp") });
    expect(parseIpParam("::::h:eth0:bootp")).toEqual({
      error: expect.stringContaining('autoconf "bootp"'),
    });
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
  test("ip=dhcp replaces the static eth0 of vm.toml with a DHCP one, and the result validates", () => {
    const raw: Record<string, unknown> = {
      network: {
        interfaces: [
          { name: "eth0", address: "1.1.1.1/8", gateway: "1.0.0.1" },
          { name: "eth1", address: "10.9.0.2/24" },
        ],
      },
    };
    expect(applyCmdlineOverrides(raw, cmdlineParams("ip=::::dhcphost:eth0:dhcp"))).toEqual([]);
    expect(raw.hostname).toBe("dhcphost");
    expect(raw.network).toEqual({
      interfaces: [
        { name: "eth1", address: "10.9.0.2/24" },
        { name: "eth0", dhcp: true },
      ],
    });
    const { config, errors } = validateVmConfig(raw, "vm.toml");
    expect(errors).toEqual([]);
    expect(config.network.interfaces[1]).toEqual({ name: "eth0", dhcp: true });
  });
});
