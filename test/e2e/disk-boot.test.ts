/**
 * Disk VMs through the tiny boot initramfs (host/boot-initramfs.ts), deployVm's
 * default for ext4: the pre-init alone loads virtio-blk/ext4, mounts root=,
 * makes it the root and execs the disk's /sbin/init, so hero-init runs from
 * the disk (paged in on demand) and is started once. Without the disk it
 * says why and powers off (the tiny initramfs has no hero-init to fall back on).
 * A root image labelled like a config disk is not read as one.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { expectInOrder } from "../order.ts";
import { fsckReadOnly, glibcBusyboxExt4 } from "../vm/ext4-disk.ts";
import { testVmToml } from "../vm/image.ts";
import { bootVm } from "../vm/qemu.ts";

setDefaultTimeout(600_000);
const READY = "hero-init boot: READY";
let kernel: Kernel;
let dir: string;
let d: Deployment;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-diskboot-"));
  d = await deployVm({
    rootfs: { path: glibcBusyboxExt4(join(dir, "root.ext4")), format: "ext4" },
    out: join(dir, "out"),
    vm: parseToml(testVmToml(), "vm.toml") as VmConfigInput,
    // The kernel's own view of "/": the disk, read-write.
    services: {
      probe:
        'exec: sh -c "grep \\" / \\" /proc/mounts | sed s/^/ROOTMOUNT=/"\noneshot: true\nlog: stdout\n',
    },
    kernel,
  });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("ext4 disk through the tiny boot initramfs", () => {
  test("deployVm makes a ~3 MB boot initramfs; the pre-init mounts the disk and its hero-init boots from it", async () => {
    expect(d.kernelCmdline).toBe("root=/dev/vda rw");
    expect(statSync(d.initrd).size).toBeLessThan(4_000_000);
    await using vm = await bootVm({
      kernel,
      initrd: d.initrd,
      disks: [{ path: d.disk as string }],
      append: d.kernelCmdline,
      name: "diskboot-tiny",
    });
    await vm.waitFor(READY, 300_000);
    await vm.waitFor("ROOTMOUNT=", 60_000);
    const out = vm.console();
    expect(out).toMatch(/ROOTMOUNT=\/dev\/vda \/ ext4 rw/);
    // One hero-init start, from the disk: no switch-root step of hero-init in an initramfs.
    expectInOrder(out, "hero-init preinit: switched root to /dev/vda, exec /sbin/init", READY);
    expect(out).not.toContain("switchroot: switching");
    // After READY PID 1 pages out what boot used of its executable; from the disk the kernel
    // can drop those pages, so PID 1's PSS falls (release-pages.ts).
    const [, before, after] = await vm.waitForMatch(
      /boot pages \(\d+ mappings\): PSS ([\d.]+) -> ([\d.]+) MiB/,
      {
        timeoutMs: 60_000,
      },
    );
    expect(Number(before) - Number(after)).toBeGreaterThan(5);
    await vm.powerdown();
    expect(await vm.waitExit(90_000)).toBe(0);
    expect(fsckReadOnly(d.disk as string).code).toBe(0);
  });

  test("no disk: the pre-init names the device and the reason, and powers off", async () => {
    await using vm = await bootVm({
      kernel,
      initrd: d.initrd,
      disks: [],
      append: d.kernelCmdline,
      name: "diskboot-nodisk",
    });
    await vm.waitFor("hero-init preinit: cannot mount root /dev/vda", 120_000);
    await vm.waitFor("powering off", 60_000);
    await vm.waitExit(60_000);
    expect(vm.console()).not.toContain(READY);
  });

  // Hostile image: a root filesystem labelled HEROCFG with a vm.toml at its top. Under an
  // overlay the disk is mounted read-only as the lower layer, so a second read-only mount of it
  // (the config disk step's) succeeds, and that vm.toml would replace the VM's own. Disks in
  // use are never probed (block.ts disksWithLabel opens them O_EXCL: EBUSY).
  test("a root disk labelled HEROCFG is not read as the config disk (overlay root): the VM keeps its own vm.toml", async () => {
    const root = glibcBusyboxExt4(join(dir, "herocfg.ext4"));
    const h = await deployVm({
      rootfs: { path: root, format: "ext4" },
      out: join(dir, "herocfg"),
      vm: parseToml(testVmToml(), "vm.toml") as VmConfigInput,
      overlay: true,
      kernel,
    });
    const toml = join(dir, "hostile.toml");
    writeFileSync(toml, testVmToml().replace('hostname = "hero-test"', 'hostname = "hostile"'));
    for (const argv of [
      ["e2label", h.disk as string, "HEROCFG"],
      ["debugfs", "-w", "-R", `write ${toml} vm.toml`, h.disk as string],
    ]) {
      const r = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
      expect(r.exitCode, `${argv.join(" ")}: ${r.stderr.toString()}`).toBe(0);
    }
    await using vm = await bootVm({
      kernel,
      initrd: h.initrd,
      disks: [{ path: h.disk as string }],
      append: h.kernelCmdline,
      name: "diskboot-herocfg",
    });
    await vm.waitFor(READY, 300_000);
    const out = vm.console();
    expect(out).toContain("(overlay, writes go to RAM)");
    expect(out).toContain("hero-init hostname: hero-test");
    expect(out).not.toContain("hostile");
    expect(out).not.toMatch(/configdisk:.*\/dev\/vda/);
  });
});
