import { describe, expect, test } from "bun:test";
import { peersText, statusText } from "./mycelium.ts";

describe("mycelium output (pure)", () => {
  test("status: unknown address and subnet as -, the reason only when there is one", () => {
    expect(statusText({ state: "starting", address: null, subnet: null, reason: "" })).toBe(
      "state: starting\naddress: -\nsubnet: -\n",
    );
    expect(
      statusText({ state: "up", address: "4ab::1", subnet: "4ab::/64", reason: "no peers" }),
    ).toBe("state: up\naddress: 4ab::1\nsubnet: 4ab::/64\nreason: no peers\n");
  });

  test("peers: one line each", () => {
    expect(
      peersText([
        {
          endpoint: { proto: "tcp", socketAddr: "[2a01::1]:9651" },
          type: "static",
          connectionState: "alive",
        },
      ]),
    ).toBe("tcp://[2a01::1]:9651 static alive\n");
    expect(peersText([])).toBe("");
  });
});
