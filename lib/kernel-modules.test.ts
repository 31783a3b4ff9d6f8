import { describe, expect, test } from "bun:test";
import {
  formatLoadOrder,
  LOAD_ORDER_HEADER,
  loadOrderServes,
  moduleName,
  parseLoadOrder,
  parseModulesDep,
  planModules,
} from "./kernel-modules.ts";

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

/** Lines of Debian 6.1.0-57-amd64's modules.dep (the disk and network modules, and a neighbour). */
const DEBIAN = `kernel/fs/mbcache.ko:
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/jbd2/jbd2.ko:
kernel/fs/ubifs/ubifs.ko: kernel/drivers/mtd/ubi/ubi.ko kernel/drivers/mtd/mtd.ko kernel/lib/crc16.ko
kernel/fs/overlayfs/overlay.ko:
kernel/crypto/crc32c_generic.ko:
kernel/lib/crc16.ko:
kernel/drivers/acpi/button.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/input/evdev.ko:
`;
const ROOT = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "overlay"];

describe("load-order file", () => {
  const dep = parseModulesDep(DEBIAN);
  const plan = planModules([...ROOT, "button", "unix"], dep, new Set(["unix"]), new Set());
  const text = formatLoadOrder("6.1.0-57-amd64", plan, dep);

  test("lists the closure dependencies first, with their deps, and requested builtins", () => {
    expect(text.split("\n")).toEqual([
      `${LOAD_ORDER_HEADER}6.1.0-57-amd64`,
      "kernel/drivers/virtio/virtio_pci_legacy_dev.ko:",
      "kernel/drivers/virtio/virtio_pci_modern_dev.ko:",
      "kernel/drivers/virtio/virtio.ko:",
      "kernel/drivers/virtio/virtio_ring.ko:",
      "kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
      "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko",
      "kernel/crypto/crc32c_generic.ko:",
      "kernel/lib/crc16.ko:",
      "kernel/fs/mbcache.ko:",
      "kernel/fs/jbd2/jbd2.ko:",
      "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko",
      "kernel/fs/overlayfs/overlay.ko:",
      "kernel/drivers/acpi/button.ko:",
      "builtin unix",
      "",
    ]);
    expect(text).not.toContain("ubifs");
  });

  test("parsed back, it plans any subset exactly as the full modules.dep does", () => {
    const order = parseLoadOrder(text);
    expect(order?.version).toBe("6.1.0-57-amd64");
    expect(order?.builtin).toEqual(new Set(["unix"]));
    if (!order) throw new Error("unparsed");
    for (const names of [ROOT, ["ext4"], ["virtio_blk", "button"], ["overlay", "unix"]]) {
      const loaded = new Set(["virtio"]);
      expect(planModules(names, order.dep, order.builtin, loaded)).toEqual(
        planModules(names, dep, new Set(["unix"]), loaded),
      );
    }
  });

  test("a file without the header or version is not a load order", () => {
    expect(parseLoadOrder("")).toBeNull();
    expect(parseLoadOrder(DEBIAN)).toBeNull();
    expect(parseLoadOrder(`${LOAD_ORDER_HEADER}\nkernel/a.ko:\n`)).toBeNull();
  });

  test("serves only the running kernel and only when it knows every required name", () => {
    const order = parseLoadOrder(text);
    expect(loadOrderServes(order, "6.1.0-57-amd64", ROOT)).toBe(true);
    expect(loadOrderServes(order, "6.1.0-57-amd64", ["virtio-pci", "unix"])).toBe(true);
    expect(loadOrderServes(order, "6.1.0-57-amd64", [])).toBe(true);
    // Another kernel, a name it does not list (e.g. a vm.toml edited after injection), no file.
    expect(loadOrderServes(order, "6.1.0-58-amd64", ROOT)).toBe(false);
    expect(loadOrderServes(order, "6.1.0-57-amd64", ["ext4", "tun"])).toBe(false);
    expect(loadOrderServes(null, "6.1.0-57-amd64", [])).toBe(false);
  });
});
