/**
 * VM TEST (boots QEMU under TCG, two boots): the config disk (issue 18).
 * One base image (the minimal template as an initramfs, with a vm.toml of
 * its own in the rootfs) serves two VMs; each VM's vm.toml, services and
 * secrets are on its own config disk made by deploy_vm. Each VM gets its
 * own hostname and services; the agent token is on tmpfs at 0600 in a 0700
 * directory; the disk is unmounted once read. Precedence: the config disk
 * beats the rootfs's vm.toml (VM A), a kernel argument beats the config
 * disk (VM B). A hostile config disk (links, a device node, a FIFO, a
 * huge file, bad names, a non-UTF-8 vm.toml) is refused entry by entry,
 * naming each, and the VM boots with the rootfs's vm.toml and the disk's
 * good service (the copy's logic alone: test/attack/config-disk.test.ts).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { testVmToml } from "../vm/image.ts";
import { bootVm, READY } from "../vm/qemu.ts";

setDefaultTimeout(600_000);
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-cfgdisk-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const vm = (hostname: string) =>
  parseToml(
    testVmToml().replace('hostname = "hero-test"', `hostname = "${hostname}"`),
    "vm.toml",
  ) as VmConfigInput;

/**
 * A base image: the minimal template as an initramfs whose own vm.toml says
 * rootfs-host and lists the disk modules (a re-inject adds no modules to an
 * image that has some).
 */
const deployBase = (name: string) =>
  deployVm({
    template: "minimal",
    out: join(dir, name),
    vm: {
      ...vm("rootfs-host"),
      modules: ["virtio_pci", "virtio_net", "virtio_blk", "ext4", "crc32c_generic"],
    },
    kernel,
  });

/** Prints what the test checks, from inside the guest. */
const PROBE =
  "exec: \"sh -c 'echo CFG host=$(hostname) tok=$(stat -c %a:%s /run/hero-init/secrets/agent.token) " +
  "sdir=$(stat -c %a /run/hero-init/secrets) vmtoml=$(stat -c %a /run/hero-init/config-disk/vm.toml) " +
  "mounted=$(grep -c -e /dev/vd -e config-disk /proc/mounts) mnt=$(ls -d /run/hero-init/config-disk.mnt 2>/dev/null || echo gone) " +
  "run=$(grep -w /run /proc/mounts | cut -d, -f1) rootfs=$(grep -c rootfs-host /etc/hero-init/vm.toml) " +
  "etczinit=$(echo $(ls /etc/zinit)) END'\"\noneshot: true\nlog: stdout\n";

describe("config disk (QEMU)", () => {
  test("one base image, two config disks: own hostname and services, secrets 0600 on tmpfs, disk unmounted, precedence", async () => {
    const base = await deployBase("base");
    const mk = (name: string, service: string) =>
      deployVm({
        rootfs: { path: base.image, format: "initramfs" },
        out: join(dir, name),
        vm: vm(name),
        services: {
          probe: PROBE,
          [service]: `exec: echo ${service.toUpperCase()}-RAN\noneshot: true\nlog: stdout\n`,
        },
        configDisk: true,
        kernel,
      });
    const a = await mk("vm-a", "only-a");
    const b = await mk("vm-b", "only-b");
    expect(a.image).toBe(base.image);
    expect(b.image).toBe(base.image);
    expect(a.configDisk).toBe(join(dir, "vm-a", "config.ext4"));

    {
      await using v = await bootVm({
        kernel,
        initrd: base.image,
        disks: [{ path: a.configDisk as string }],
        name: "cfgdisk-a",
      });
      await v.waitFor(READY);
      const line = await v.waitFor(/CFG host=.* END/, 120_000);
      // the config disk beats the rootfs's vm.toml
      expect(line).toContain("host=vm-a ");
      expect(line).toContain("tok=600:65 sdir=700 vmtoml=600 ");
      expect(line).toContain("mounted=0 mnt=gone ");
      expect(line).toMatch(/run=\S+ \/run tmpfs /);
      // the rootfs is as the base deploy left it: its own vm.toml and services, nothing of VM A
      expect(line).toContain(" rootfs=1 etczinit=syslogd.yaml END");
      await v.waitFor(/ONLY-A-RAN/, 60_000);
      const out = v.cleanConsole();
      expect(out).toMatch(
        /configdisk: \/dev\/vda: vm\.toml taken, 2 services, 1 secrets; unmounted/,
      );
      expect(out).not.toContain("ONLY-B-RAN");
      expect(out).not.toContain("CONFIG ERROR");
      await v.powerdown();
      expect(await v.waitExit(60_000)).toBe(0);
    }
    {
      // a kernel argument beats the config disk; the disk's services still run
      await using v = await bootVm({
        kernel,
        initrd: base.image,
        disks: [{ path: b.configDisk as string }],
        append: "hero.hostname=from-cmdline",
        name: "cfgdisk-b",
      });
      await v.waitFor(READY);
      const line = await v.waitFor(/CFG host=.* END/, 120_000);
      expect(line).toContain("host=from-cmdline ");
      expect(line).toContain("mounted=0 mnt=gone ");
      await v.waitFor(/ONLY-B-RAN/, 60_000);
      expect(v.cleanConsole()).not.toContain("ONLY-A-RAN");
      await v.powerdown();
      expect(await v.waitExit(60_000)).toBe(0);
    }
  });

  test("a hostile config disk: each bad entry refused by name, the VM boots on the rootfs's vm.toml", async () => {
    const base = await deployBase("hostile-base");
    const stage = join(dir, "hostile-stage");
    mkdirSync(join(stage, "services"), { recursive: true });
    mkdirSync(join(stage, "secrets"));
    writeFileSync(join(stage, "vm.toml"), new Uint8Array([0x68, 0x3d, 0xff, 0xfe, 0x0a]));
    writeFileSync(
      join(stage, "services", "good.yaml"),
      "exec: echo GOOD-RAN\noneshot: true\nlog: stdout\n",
    );
    symlinkSync("/etc/hero-init/vm.toml", join(stage, "services", "link.yaml"));
    symlinkSync("/etc", join(stage, "etc"));
    const sh = (argv: string[]) => expect(Bun.spawnSync(argv).exitCode).toBe(0);
    sh(["mkfifo", join(stage, "secrets", "fifo")]);
    sh(["mknod", join(stage, "secrets", "mem"), "c", "1", "1"]);
    writeFileSync(join(stage, "secrets", "big"), "");
    truncateSync(join(stage, "secrets", "big"), 64 * 1024 * 1024);
    writeFileSync(join(stage, "secrets", "bad\x1bname"), "x");
    const img = join(dir, "hostile.ext4");
    sh(["mke2fs", "-q", "-F", "-t", "ext4", "-L", "HEROCFG", "-d", stage, img, "96M"]);
    await using v = await bootVm({
      kernel,
      initrd: base.image,
      disks: [{ path: img }],
      name: "cfgdisk-hostile",
    });
    await v.waitFor(READY);
    await v.waitFor(/GOOD-RAN/, 120_000);
    const out = v.cleanConsole();
    for (const re of [
      /configdisk: \/dev\/vda: refused vm\.toml: not valid UTF-8: the rootfs's vm\.toml is used instead/,
      /refused services\/link\.yaml: not a regular file/,
      /refused "etc": not part of the config disk layout/,
      /refused secrets\/fifo: not a regular file/,
      /refused secrets\/mem: not a regular file/,
      /refused secrets\/big: 67108864 bytes, more than the 1048576 allowed/,
      /refused secrets\/"bad\?name": bad name/,
      /configdisk: \/dev\/vda: vm\.toml absent, 1 services, 0 secrets; unmounted/,
      /hostname: rootfs-host/,
    ])
      expect(out).toMatch(re);
    await v.powerdown();
    expect(await v.waitExit(60_000)).toBe(0);
  });

  test("an ext4 root disk, then the config disk and a volume: found by label and serial after the switch of root", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "ext4",
      out: join(dir, "ext4"),
      vm: parseToml(
        `${testVmToml().replace('hostname = "hero-test"', 'hostname = "ext4-vm"')}\n[[volumes]]\nserial = "vol"\npath = "/vol"\nsize_mb = 8\n`,
        "vm.toml",
      ) as VmConfigInput,
      services: { probe: PROBE },
      configDisk: true,
      kernel,
    });
    await using v = await bootVm({
      kernel,
      initrd: d.initrd,
      append: d.kernelCmdline,
      // the order `hero-init vm run` uses: root disk, config disk, volumes
      disks: [
        { path: d.disk as string },
        { path: d.configDisk as string },
        ...(d.volumes ?? []).map((x) => ({ path: x.path, serial: x.serial })),
      ],
      name: "cfgdisk-ext4",
    });
    await v.waitFor(READY);
    const line = await v.waitFor(/CFG host=.* END/, 120_000);
    expect(line).toContain("host=ext4-vm tok=600:65 sdir=700 vmtoml=600 ");
    // the root disk (/dev/vda) and the volume (/dev/vdc) stay mounted; the config disk does not
    expect(line).toContain("mounted=2 mnt=gone ");
    const out = v.cleanConsole();
    expect(out).toMatch(/configdisk: \/dev\/vdb: vm\.toml taken, 1 services, 1 secrets; unmounted/);
    expect(out).toMatch(/volumes: \/dev\/vdc \(serial "vol"\) on \/vol/);
    await v.powerdown();
    expect(await v.waitExit(60_000)).toBe(0);
  });
});
