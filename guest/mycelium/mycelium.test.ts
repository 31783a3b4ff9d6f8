import { describe, expect, test } from "bun:test";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { RPC } from "../control/protocol.ts";
import { myceliumAdmin, peerParam, refusal } from "./admin.ts";
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
      pubkey: null,
    });
    expect(addressFromAdmin({ nodeSubnet: "54f:b680:ba6e:7ced::/64" })?.address).toBe(
      "54f:b680:ba6e:7ced::",
    );
    expect(addressFromAdmin({ nodePubkey: "x" })).toBeNull();
    const pubkey = "DC38EC437EA7B8298841A42047533B604F3B34E349121462B5ACA8E84D933F06";
    expect(addressFromAdmin({ nodeIp: "54f::1", nodePubkey: pubkey })?.pubkey).toBe(
      pubkey.toLowerCase(),
    );
    expect(addressFromAdmin({ nodeIp: "54f::1", nodePubkey: "not hex" })?.pubkey).toBeNull();
    expect(addressFromAdmin("nope")).toBeNull();
  });

  test("a tentative address is not usable yet", () => {
    const line = (flags: string) => `054fb680ba6e7ced0000000000000001 05 07 00 ${flags} mycelium\n`;
    expect(addressUsable(line("80"), "mycelium", "54f:b680:ba6e:7ced::1")).toBe(true);
    expect(addressUsable(line("c0"), "mycelium", "54f:b680:ba6e:7ced::1")).toBe(false);
    expect(addressUsable(line("80"), "eth0", "54f:b680:ba6e:7ced::1")).toBe(false);
  });
});

describe("admin client (pure parts; against the real daemon in test/integration/mycelium-real.test.ts)", () => {
  test("a peer param is the first of an array or {endpoint}, refused unless mycelium would take it", () => {
    expect(peerParam(["tcp://192.0.2.1:9651"])).toBe("tcp://192.0.2.1:9651");
    expect(peerParam({ endpoint: "vsock://2:9651" })).toBe("vsock://2:9651");
    for (const bad of [["tcp://host.example:9651"], [], { endpoint: 1 }, null]) {
      expect(() => peerParam(bad)).toThrow(/^invalid peer URI .*: use tcp:\/\/IP:PORT/);
    }
  });

  test("mycelium's refusals: 409 and 404 by name, 400/422 with its text, as invalid params; the rest internal", () => {
    const r = (status: number, text: string) => {
      const e = refusal(status, text, "tcp://192.0.2.1:1") as Error & {
        detail: { rpcCode?: number };
      };
      return [e.detail.rpcCode, e.message];
    };
    expect(r(409, "A peer identified by that endpoint already exists")).toEqual([
      RPC.INVALID_PARAMS,
      "peer tcp://192.0.2.1:1 already exists",
    ]);
    expect(r(404, "")).toEqual([RPC.INVALID_PARAMS, "no peer tcp://192.0.2.1:1"]);
    expect(r(400, "protocol for endpoint is not supported\n")).toEqual([
      RPC.INVALID_PARAMS,
      "mycelium refused tcp://192.0.2.1:1: protocol for endpoint is not supported",
    ]);
    expect(r(500, "")).toEqual([RPC.INTERNAL, "mycelium: HTTP 500 for tcp://192.0.2.1:1"]);
  });

  test("no [mycelium]: status says disabled, the other methods a config error; a silent API is internal", async () => {
    const none = myceliumAdmin(null, () => null);
    expect(await none("mycelium_status", [])).toMatchObject({ state: "disabled", pubkey: null });
    await expect(none("mycelium_peers", [])).rejects.toMatchObject({
      detail: { rpcCode: RPC.CONFIG_ERROR },
    });
    const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => new Response("") });
    const api = `127.0.0.1:${server.port}`;
    server.stop(true);
    await expect(myceliumAdmin(api, () => null)("mycelium_peers", [])).rejects.toMatchObject({
      detail: { rpcCode: RPC.INTERNAL },
      message: expect.stringContaining(`mycelium admin API at ${api} does not answer`),
    });
  });
});
