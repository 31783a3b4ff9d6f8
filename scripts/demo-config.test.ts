import { describe, expect, test } from "bun:test";
import { parseToml } from "../lib/toml.ts";
import { validateVmConfig } from "../lib/vm-config.ts";
import { demoVmToml, parseDemoArgs } from "./demo-config.ts";

describe("parseDemoArgs", () => {
  test("the overlay is on by default, without peers", () => {
    expect(parseDemoArgs([])).toEqual({ mycelium: true, peers: [], help: false });
  });
  test("--no-mycelium, --help, repeated --peer in both forms", () => {
    expect(parseDemoArgs(["--no-mycelium"]).mycelium).toBe(false);
    expect(parseDemoArgs(["-h"]).help).toBe(true);
    expect(
      parseDemoArgs(["--peer", "tcp://192.0.2.1:9651", "--peer=quic://[2001:db8::1]:9651"]).peers,
    ).toEqual(["tcp://192.0.2.1:9651", "quic://[2001:db8::1]:9651"]);
  });
  test("refuses what the daemon would refuse, a missing value, an unknown flag, peers without overlay", () => {
    expect(() => parseDemoArgs(["--peer", "tcp://node.example:9651"])).toThrow(
      "--peer tcp://node.example:9651: not a mycelium peer URI",
    );
    expect(() => parseDemoArgs(["--peer"])).toThrow("--peer : not a mycelium peer URI");
    expect(() => parseDemoArgs(["--mycelium=no"])).toThrow("unknown argument --mycelium=no");
    expect(() => parseDemoArgs(["--no-mycelium", "--peer", "tcp://192.0.2.1:9651"])).toThrow(
      "--peer needs the overlay",
    );
  });
});

describe("demoVmToml", () => {
  test("valid vm.toml; [mycelium] peers with the host node only when given", () => {
    for (const peer of [null, "tcp://10.0.2.2:9651"]) {
      const cfg = parseToml(demoVmToml(peer), "vm.toml");
      expect(validateVmConfig(cfg, "vm.toml").errors).toEqual([]);
      expect(cfg.mycelium).toEqual(peer ? { peers: [peer] } : undefined);
      expect(cfg.ui).toEqual({ listen: ["0.0.0.0"], allow: ["10.0.2.2/32"] });
    }
  });
});
