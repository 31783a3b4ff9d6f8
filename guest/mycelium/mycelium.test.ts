import { describe, expect, test } from "bun:test";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { addressFromAdmin, addressUsable } from "./discover.ts";
import { myceliumExec, myceliumService } from "./service.ts";

const cfg = (extra = "") => {
  const c = parseVmConfig(`[mycelium]\n${extra}`, "vm.toml").config.mycelium;
  if (!c) throw new Error("no mycelium section");
  return c;
};

describe("mycelium service", () => {
  test("exec line uses mycelium's flags, peers last", () => {
    expect(
      myceliumExec(cfg(`peers = ["tcp://192.0.2.1:9651", "quic://[2001:db8::1]:9651"]\n`)),
    ).toBe(
      "/usr/bin/mycelium -k /var/lib/mycelium/key.bin --tun-name mycelium --api-addr 127.0.0.1:8989 --peers tcp://192.0.2.1:9651 quic://[2001:db8::1]:9651",
    );
    expect(myceliumExec(cfg())).not.toContain("--peers");
  });
  test("is long-running with backoff and no give-up", () => {
    const s = myceliumService(cfg());
    expect(s.oneshot).toBe(false);
    expect(s.restart.limit).toBe(0);
  });
});

describe("address discovery", () => {
  test("nodeIp, or derived from nodeSubnet on older mycelium", () => {
    expect(
      addressFromAdmin({
        nodeSubnet: "54f:b680:ba6e:7ced::/64",
        nodeIp: "54f:b680:ba6e:7ced:1234::1",
      }),
    ).toEqual({
      address: "54f:b680:ba6e:7ced:1234::1",
      subnet: "54f:b680:ba6e:7ced::/64",
    });
    expect(addressFromAdmin({ nodeSubnet: "54f:b680:ba6e:7ced::/64" })?.address).toBe(
      "54f:b680:ba6e:7ced::",
    );
    expect(addressFromAdmin({ nodePubkey: "x" })).toBeNull();
    expect(addressFromAdmin("nope")).toBeNull();
  });

  test("a tentative address is not usable yet", () => {
    const line = (flags: string) => `054fb680ba6e7ced0000000000000001 05 07 00 ${flags} mycelium\n`;
    expect(addressUsable(line("80"), "mycelium", "54f:b680:ba6e:7ced::1")).toBe(true);
    expect(addressUsable(line("c0"), "mycelium", "54f:b680:ba6e:7ced::1")).toBe(false);
    expect(addressUsable(line("80"), "eth0", "54f:b680:ba6e:7ced::1")).toBe(false);
  });
});
