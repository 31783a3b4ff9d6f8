/**
 * Boot issue, in QEMU (TCG): hero-init as PID 1 boots a Debian kernel from a
 * test initramfs, reaches READY, mounts what it must, serves :9999, and ends
 * cleanly on every path that should end a VM.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { buildImage, type ImageOptions, serviceFiles, testVmToml } from "../vm/image.ts";
import { bootVm, READY } from "../vm/qemu.ts";

setDefaultTimeout(240_000);
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-boot-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function image(name: string, o: Omit<ImageOptions, "kernel">): Promise<string> {
  return buildImage(join(dir, `${name}.cpio`), { kernel, ...o });
}

async function getJson(port: number, path: string): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.json() };
}

describe("boot", () => {
  test("boots to READY with every mount, serves /health, powers off on the ACPI button", async () => {
    const initrd = await image("basic", {
      vmToml: testVmToml(),
      busybox: true,
      extra: serviceFiles({
        // What the kernel says is mounted, not what hero-init says it mounted.
        mounts: "exec: sh -c \"sed 's/^/MOUNTED /' /proc/mounts\"\noneshot: true\nlog: stdout\n",
        // The CPU the harness asks QEMU for (host/qemu-args.ts TCG_CPU): no ERMS flag.
        cpu: 'exec: sh -c "echo CPU-ERMS=$(grep -c -w erms /proc/cpuinfo) CPU-AVX2=$(grep -c -w avx2 /proc/cpuinfo)"\noneshot: true\nlog: stdout\n',
      }),
    });
    await using vm = await bootVm({ kernel, initrd, hostfwd: [9999], name: "boot-basic" });
    await vm.waitFor(READY, 120_000);
    const out = vm.console();
    await vm.waitFor(/MOUNTED cgroup2 /, 30_000);
    const mounted = [...vm.console().matchAll(/MOUNTED \S+ (\S+) (\S+) /g)].map(
      (m) => `${m[1]} ${m[2]}`,
    );
    for (const m of [
      "/proc proc",
      "/sys sysfs",
      "/dev devtmpfs",
      "/dev/pts devpts",
      "/dev/shm tmpfs",
      "/run tmpfs",
      "/tmp tmpfs",
      "/sys/fs/cgroup cgroup2",
    ]) {
      expect(mounted).toContain(m);
    }
    expect(await vm.waitFor(/CPU-ERMS=\d+ CPU-AVX2=\d+/, 30_000)).toMatch(/CPU-ERMS=0 CPU-AVX2=1/);
    expect(out).toContain("hostname: hero-test");
    expect(out).toContain("network: eth0 10.0.2.15/24 via 10.0.2.2 up");
    expect(out).toContain("acpi: watching /dev/input/");
    expect(out).not.toContain("CONFIG ERROR");
    const port = vm.ports[9999] as number;
    const health = await getJson(port, "/health");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: "ok", hostname: "hero-test" });
    // From an initramfs the executable's pages cannot be freed: PID 1 keeps them mapped
    // (release-pages.ts; the disk case is in disk-boot.test.ts).
    await vm.waitFor("memory: boot pages kept: the executable is on tmpfs", 30_000);
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
    expect(vm.console()).toContain("poweroff: ACPI power button");
    expect(vm.console()).toMatch(/reboot: Power down/);
  });

  test("static network from the kernel's ip= argument, DNS written to /etc/resolv.conf", async () => {
    const toml = `modules = ["virtio_pci", "virtio_net"]\n[ui]\nlisten = ["0.0.0.0"]\nallow = ["10.0.2.2/32"]\n`;
    const enc = new TextEncoder();
    const initrd = await image("ipparam", {
      vmToml: toml,
      busybox: true,
      extra: [
        { type: "dir", path: "etc/zinit", mode: 0o755 },
        {
          type: "file",
          path: "etc/zinit/dns.yaml",
          mode: 0o644,
          data: enc.encode('exec: sh -c "cat /etc/resolv.conf"\noneshot: true\nlog: stdout\n'),
        },
      ],
    });
    await using vm = await bootVm({
      kernel,
      initrd,
      hostfwd: [9999],
      append: "ip=10.0.2.15::10.0.2.2:255.255.255.0:iphost:eth0:off:10.0.2.3",
      name: "boot-ipparam",
    });
    await vm.waitFor(READY, 120_000);
    await vm.waitFor("hero-init dns: nameserver 10.0.2.3", 30_000);
    expect(vm.console()).toContain("network: eth0 10.0.2.15/24 via 10.0.2.2 up");
    expect(vm.console()).toContain("hostname: iphost");
    expect((await getJson(vm.ports[9999] as number, "/health")).body).toMatchObject({
      hostname: "iphost",
    });
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
  });

  test("kernel arguments: hero.config=, hero.init=, hero.dns=, hero.ui.listen=, hero.ui.allow= take effect", async () => {
    const enc = new TextEncoder();
    // The image's own vm.toml would make the UI unreachable from the host
    // (loopback only) and name the host "default-host"; the kernel line
    // points at another config and opens the UI.
    const alt = testVmToml()
      .replace('hostname = "hero-test"', 'hostname = "alt-host"')
      .replace(/\[ui\][\s\S]*$/, "");
    const initrd = await image("cmdline", {
      vmToml: `hostname = "default-host"\nmodules = ["virtio_pci", "virtio_net"]\n`,
      busybox: true,
      extra: [
        { type: "file", path: "etc/alt.toml", mode: 0o644, data: enc.encode(alt) },
        { type: "dir", path: "opt", mode: 0o755 },
        {
          type: "file",
          path: "opt/wrap-init",
          mode: 0o755,
          data: enc.encode(
            '#!/bin/sh\necho "WRAPPER-RAN as pid $$"\nexec /usr/lib/hero/hero-init "$@"\n',
          ),
        },
        { type: "dir", path: "etc/zinit", mode: 0o755 },
        {
          type: "file",
          path: "etc/zinit/dns.yaml",
          mode: 0o644,
          data: enc.encode('exec: sh -c "cat /etc/resolv.conf"\noneshot: true\nlog: stdout\n'),
        },
      ],
    });
    await using vm = await bootVm({
      kernel,
      initrd,
      hostfwd: [9999],
      append:
        "hero.config=/etc/alt.toml hero.init=/opt/wrap-init hero.dns=9.9.9.9 hero.ui.listen=0.0.0.0 hero.ui.allow=10.0.2.2/32",
      name: "boot-cmdline",
    });
    await vm.waitFor(READY, 120_000);
    // hero.init: the pre-init exec'd the wrapper as PID 1, which exec'd hero-init.
    expect(vm.console()).toContain("WRAPPER-RAN as pid 1");
    // hero.config: the other file's hostname and network.
    expect(vm.console()).toContain("hostname: alt-host");
    // hero.dns overrides the config's 10.0.2.3.
    await vm.waitFor("hero-init dns: nameserver 9.9.9.9", 30_000);
    expect(vm.console()).not.toContain("nameserver 10.0.2.3");
    // hero.ui.listen/allow: reachable through the host forward (10.0.2.2 → 10.0.2.15).
    const health = await getJson(vm.ports[9999] as number, "/health");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ hostname: "alt-host" });
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
  });

  test("ctrl-alt-del reboots (SIGINT to PID 1, hard CAD disabled)", async () => {
    const initrd = await image("cad", { vmToml: testVmToml() });
    await using vm = await bootVm({ kernel, initrd, name: "boot-cad" });
    await vm.waitFor(READY, 120_000);
    await vm.sendCtrlAltDel();
    await vm.waitExit(60_000);
    expect(vm.console()).toContain("reboot: ctrl-alt-del (SIGINT)");
    expect(vm.console()).toMatch(/reboot: Restarting system/);
  });

  test("a broken vm.toml still boots, with the error (file, line, field) on the console", async () => {
    const bad = `hostname = "ok-host"\n[network]\ndns = ["not-an-ip"]\n[ui]\nport = "x"\n`;
    const initrd = await image("badcfg", { vmToml: bad });
    await using vm = await bootVm({ kernel, initrd, name: "boot-badcfg" });
    await vm.waitFor(READY, 120_000);
    const out = vm.console();
    expect(out).toMatch(
      /CONFIG ERROR \/etc\/hero-init\/vm\.toml:3: network\.dns\.0: must be an IPv4 address/,
    );
    expect(out).toMatch(/CONFIG ERROR \/etc\/hero-init\/vm\.toml:5: ui\.port:/);
    expect(out).toContain("hostname: ok-host"); // the valid part is kept
    await vm.sendCtrlAltDel();
    await vm.waitExit(60_000);
  });

  test("a TOML syntax error is reported with line and column and defaults are used", async () => {
    const initrd = await image("syntax", { vmToml: `hostname = "a"\n[network\n` });
    await using vm = await bootVm({ kernel, initrd, name: "boot-syntax" });
    await vm.waitFor(READY, 120_000);
    expect(vm.console()).toMatch(/CONFIG ERROR \/etc\/hero-init\/vm\.toml:2:\d+: /);
    expect(vm.console()).toContain("hostname: hero-vm");
    await vm.sendCtrlAltDel();
    await vm.waitExit(60_000);
  });

  test("missing hero-init: the pre-init says so and powers off (no kernel panic)", async () => {
    const initrd = await image("missing", { omitHeroInit: true, modules: [] });
    await using vm = await bootVm({ kernel, initrd, name: "boot-missing" });
    expect(await vm.waitExit(120_000)).toBe(0);
    const out = vm.console();
    expect(out).toContain("hero-init preinit: cannot exec /usr/lib/hero/hero-init: not found");
    expect(out).toContain("powering off");
    expect(out).toMatch(/reboot: Power down/);
    expect(out).not.toMatch(/Kernel panic/);
  });

  test("a busybox-only rootfs with no /lib (no glibc) boots through the private loader", async () => {
    const initrd = await image("busybox", { libc: "private", modules: [], busybox: true });
    await using vm = await bootVm({ kernel, initrd, name: "boot-busybox" });
    await vm.waitFor(READY, 120_000);
    await vm.sendCtrlAltDel();
    await vm.waitExit(60_000);
    expect(vm.console()).toMatch(/reboot: Restarting system/);
  });

  test("an uncaught exception, an unhandled rejection and a process.exit() inside the init do not kill it", async () => {
    const initrd = await image("fault", { vmToml: testVmToml() });
    const survived: Record<string, RegExp> = {
      uncaught: /\(survived\): Error: fault injection: uncaught exception/,
      rejection: /\(survived\): Error: fault injection: unhandled rejection/,
      exit: /process\.exit\(3\) refused: PID 1 must not exit/,
    };
    for (const [fault, marker] of Object.entries(survived)) {
      await using vm = await bootVm({
        kernel,
        initrd,
        hostfwd: [9999],
        append: `hero.fault=${fault}`,
        name: `boot-fault-${fault}`,
      });
      await vm.waitFor(READY, 120_000);
      await vm.waitFor(marker, 30_000);
      const health = await getJson(vm.ports[9999] as number, "/health");
      expect(health.status).toBe(200);
      expect(vm.console()).not.toMatch(/Kernel panic/);
      await vm.powerdown();
      expect(await vm.waitExit(60_000)).toBe(0);
    }
  });
});
