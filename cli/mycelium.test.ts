import { describe, expect, test } from "bun:test";
import { endpointUri, peersText, statusText } from "./mycelium.ts";

describe("mycelium output (pure)", () => {
  test("status: unknown address, subnet and public key as -, the reason only when there is one", () => {
    expect(statusText({ state: "starting", address: null, subnet: null, reason: "" })).toBe(
      "state: starting\naddress: -\nsubnet: -\npubkey: -\n",
    );
    expect(
      statusText({
        state: "up",
        address: "4ab::1",
        subnet: "4ab::/64",
        pubkey: "dc38ec437ea7b8298841a42047533b604f3b34e349121462b5aca8e84d933f06",
        reason: "no peers",
      }),
    ).toBe(
      "state: up\naddress: 4ab::1\nsubnet: 4ab::/64\npubkey: dc38ec437ea7b8298841a42047533b604f3b34e349121462b5aca8e84d933f06\nreason: no peers\n",
    );
  });

  test("peers: one line each, the endpoint as the URI remove-peer takes (mycelium 0.7.10's shape)", () => {
    expect(
      peersText([
        {
          endpoint: { proto: "tcp", addr: { socket: "[2a01::1]:9651" } },
          type: "static",
          connectionState: "alive",
        },
        {
          endpoint: { proto: "tcp", addr: { socket: "[::ffff:127.0.0.1]:48974" } },
          type: "inbound",
          connectionState: "alive",
        },
        {
          endpoint: { proto: "vsock", addr: { vsock: { cid: 2, port: 9651 } } },
          type: "static",
          connectionState: "dead",
        },
      ]),
    ).toBe(
      "tcp://[2a01::1]:9651 static alive\ntcp://[::ffff:127.0.0.1]:48974 inbound alive\nvsock://2:9651 static dead\n",
    );
    expect(peersText([])).toBe("");
  });

  test("peers: the shape assumed before the real daemon (socketAddr) still reads", () => {
    expect(endpointUri({ proto: "quic", socketAddr: "192.0.2.1:9651" })).toBe(
      "quic://192.0.2.1:9651",
    );
    expect(endpointUri({ proto: "tcp" })).toBe("tcp://?");
  });
});
