import { describe, expect, test } from "bun:test";
import { moduleName, parseModulesDep, planModules } from "./kernel-modules.ts";

const DEP = `kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz
kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz
kernel/net/core/failover.ko.xz:
kernel/drivers/net/tun.ko:
`;

describe("modules.dep", () => {
  test("moduleName normalises paths, suffixes and dashes", () => {
    expect(moduleName("kernel/a/virtio-net.ko.xz")).toBe("virtio_net");
    expect(moduleName("tun")).toBe("tun");
  });

  test("dependencies come first, each once", () => {
    const plan = planModules(
      ["virtio-net", "tun", "virtio_net"],
      parseModulesDep(DEP),
      new Set(),
      new Set(),
    );
    expect(plan.load).toEqual([
      "kernel/net/core/failover.ko.xz",
      "kernel/drivers/net/net_failover.ko.xz",
      "kernel/drivers/net/virtio_net.ko.xz",
      "kernel/drivers/net/tun.ko",
    ]);
    expect(plan.missing).toEqual([]);
  });

  test("loaded modules are skipped, builtin and missing ones reported", () => {
    const plan = planModules(
      ["virtio_net", "ext4", "nosuch"],
      parseModulesDep(DEP),
      new Set(["ext4"]),
      new Set(["failover"]),
    );
    expect(plan.load).toEqual([
      "kernel/drivers/net/net_failover.ko.xz",
      "kernel/drivers/net/virtio_net.ko.xz",
    ]);
    expect(plan.builtin).toEqual(["ext4"]);
    expect(plan.missing).toEqual(["nosuch"]);
  });
});
