/**
 * Smoke test of the VM harness itself, without hero-init: a Debian kernel
 * (ensureKernel) boots a tiny initramfs whose /init is a busybox shell
 * script. It loads the virtio network's module closure with insmod, serves
 * a file with busybox httpd on :9999, and then waits for one of the ways a
 * test ends a VM: the ACPI power button (QMP system_powerdown), ctrl-alt-del
 * (QMP send-key), powering off by itself, or being killed. If these fail,
 * the harness is broken, not hero-init.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type CpioEntry, writeNewc } from "../../host/cpio/newc.ts";
import { ensureKernel, ensureVmlinux, type Kernel, moduleClosure } from "../../host/kernel.ts";
import { bootVm, type Vm } from "./qemu.ts";

setDefaultTimeout(180_000);

// virtio_net's closure lacks its PCI transport; button + evdev expose the
// ACPI power button as /dev/input/eventN, which the script watches.
const MODULES = ["virtio_net", "virtio_pci", "button", "evdev"];

// PID 1. `harness_mode` comes from the kernel command line: the kernel hands
// unknown key=value arguments to init as environment variables.
const INIT = `#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s /bin
export PATH=/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "harness: init $(cut -d' ' -f1 /proc/uptime)"
for m in $(cat /etc/harness-modules); do
  insmod "/lib/modules/$(uname -r)/$m" || echo "harness: insmod $m failed"
done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
httpd -p 9999 -h /www
# 0: ctrl-alt-del becomes SIGINT to PID 1 instead of an immediate reboot.
echo 0 > /proc/sys/kernel/ctrl-alt-del
trap 'echo "harness: SIGINT"; reboot -f' INT
for d in /sys/class/input/event*; do
  if grep -q "Power Button" "$d/device/name"; then
    (dd if="/dev/input/\${d##*/}" of=/dev/null bs=24 count=1 2>/dev/null
     echo "harness: power button"; poweroff -f) &
  fi
done
echo "harness: READY $(cut -d' ' -f1 /proc/uptime)"
if [ "$harness_mode" = poweroff ]; then echo "harness: powering off"; poweroff -f; fi
# A backgrounded sleep + wait, so the INT trap runs at once, not after a sleep.
while true; do sleep 1 & wait $!; done
`;

const TOKEN = crypto.randomUUID();
let kernel: Kernel;
let dir: string;
let initrd: string;

/** cpio entries for `files` plus every parent directory (the kernel creates none itself). */
function withParents(files: CpioEntry[]): CpioEntry[] {
  const dirs = new Set<string>(["proc", "sys", "dev"]);
  for (const f of files)
    for (let d = dirname(f.path); d !== "." && d !== "/"; d = dirname(d)) dirs.add(d);
  return [
    ...[...dirs].sort().map((path): CpioEntry => ({ type: "dir", path, mode: 0o755 })),
    { type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
    ...files,
  ];
}

async function buildInitrd(path: string): Promise<string> {
  const text = (s: string) => new TextEncoder().encode(s);
  const file = (p: string, data: Uint8Array, mode = 0o644): CpioEntry => ({
    type: "file",
    path: p,
    mode,
    data,
  });
  const mods = await moduleClosure(kernel, MODULES);
  const files: CpioEntry[] = [
    file("init", text(INIT), 0o755),
    file("bin/busybox", new Uint8Array(await Bun.file("/bin/busybox").arrayBuffer()), 0o755),
    file("etc/harness-modules", text(`${mods.join("\n")}\n`)),
    file("www/index.html", text(`harness ${TOKEN}\n`)),
  ];
  for (const m of mods) {
    const data = new Uint8Array(await Bun.file(join(kernel.modulesDir, m)).arrayBuffer());
    files.push(file(`lib/modules/${kernel.version}/${m}`, data));
  }
  writeFileSync(path, writeNewc(withParents(files)));
  return path;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** Waits for READY, then for HTTP 200 with the token through the forward; logs wall times. */
async function readyAndServing(vm: Vm, t0: number, label: string): Promise<void> {
  await vm.waitFor(/\S/, 60_000);
  const firstOutput = performance.now();
  const ready = await vm.waitForMatch(/harness: READY ([\d.]+)/, { timeoutMs: 120_000 });
  const readyAt = performance.now();
  expect(vm.cleanConsole()).not.toContain("insmod");
  const port = vm.ports[9999];
  expect(port).toBeNumber();
  let body = "";
  let status = 0;
  while (status !== 200 && performance.now() - readyAt < 30_000) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(5_000) });
      status = res.status;
      body = await res.text();
    } catch {
      await Bun.sleep(50);
    }
  }
  const httpAt = performance.now();
  expect(status).toBe(200);
  expect(body).toBe(`harness ${TOKEN}\n`);
  const s = (t: number) => `${((t - t0) / 1000).toFixed(2)} s`;
  console.log(
    `harness ${label} (wall from bootVm): first console output ${s(firstOutput)}, ` +
      `READY ${s(readyAt)} (guest uptime ${ready[1]} s), HTTP 200 ${s(httpAt)}`,
  );
}

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-harness-"));
  initrd = await buildInitrd(join(dir, "initrd.cpio"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("kernel", () => {
  test("ensureKernel is idempotent and concurrent calls agree", async () => {
    const [a, b] = await Promise.all([ensureKernel(), ensureKernel()]);
    expect(a).toEqual(kernel);
    expect(b).toEqual(kernel);
    expect(existsSync(kernel.vmlinuz)).toBe(true);
    expect(existsSync(join(kernel.modulesDir, "modules.dep"))).toBe(true);
    expect(kernel.modulesDir.endsWith(`/lib/modules/${kernel.version}`)).toBe(true);
  });

  test("moduleClosure: dependencies first, each once, '-' = '_', built-ins skipped", async () => {
    const net = await moduleClosure(kernel, ["virtio-net"]);
    expect(await moduleClosure(kernel, ["virtio_net"])).toEqual(net);
    const base = (p: string) => (p.split("/").at(-1) ?? p).replace(/\.ko(\.\w+)?$/, "");
    const names = net.map(base);
    expect(names.at(-1)).toBe("virtio_net");
    expect(new Set(names).size).toBe(names.length);
    const before = (a: string, b: string) => names.indexOf(a) < names.indexOf(b);
    expect(before("failover", "net_failover")).toBe(true);
    expect(before("net_failover", "virtio_net")).toBe(true);
    expect(before("virtio_ring", "virtio")).toBe(true);
    expect(net.every((p) => p.startsWith("kernel/"))).toBe(true);
    // CONFIG_UNIX=y: built in, nothing to load.
    expect(await moduleClosure(kernel, ["unix"])).toEqual([]);
    await expect(moduleClosure(kernel, ["no_such_module"])).rejects.toThrow(/no_such_module/);
  });
});

describe("vm", () => {
  test("boots busybox, serves HTTP on the forwarded port, QMP works, the power button powers off", async () => {
    const t0 = performance.now();
    await using vm = await bootVm({ kernel, initrd, hostfwd: [9999], name: "harness-http" });
    expect(await vm.qmp("query-status")).toMatchObject({ status: "running" });
    await readyAndServing(vm, t0, "bzImage");
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
    expect(vm.cleanConsole()).toContain("harness: power button");
    expect(vm.cleanConsole()).toMatch(/reboot: Power down/);
  });

  test("the uncompressed vmlinux boots through PVH (skips the XZ decompressor)", async () => {
    const vmlinux = await ensureVmlinux(kernel);
    expect(await ensureVmlinux(kernel)).toBe(vmlinux);
    const t0 = performance.now();
    await using vm = await bootVm({
      kernel: { vmlinuz: vmlinux },
      initrd,
      hostfwd: [9999],
      name: "harness-pvh",
    });
    await readyAndServing(vm, t0, "vmlinux/PVH");
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
  });

  test("ctrl-alt-del reaches PID 1 as SIGINT; its reboot ends QEMU (-no-reboot)", async () => {
    await using vm = await bootVm({ kernel, initrd, name: "harness-cad" });
    await vm.waitFor("harness: READY", 120_000);
    await vm.sendCtrlAltDel();
    expect(await vm.waitExit(60_000)).toBe(0);
    expect(vm.cleanConsole()).toContain("harness: SIGINT");
    expect(vm.cleanConsole()).toMatch(/reboot: Restarting system/);
  });

  test("init powering off by itself: waitExit gives 0, waitFor then rejects with the console tail", async () => {
    await using vm = await bootVm({
      kernel,
      initrd,
      append: "harness_mode=poweroff",
      name: "harness-poweroff",
    });
    expect(await vm.waitExit(120_000)).toBe(0);
    expect(vm.cleanConsole()).toContain("harness: powering off");
    // Searching from an index: the first "harness:" line is the init line.
    const first = await vm.waitForMatch(/harness: (\w+)/);
    expect(first[1]).toBe("init");
    const next = await vm.waitForMatch(/harness: (\w+)/, { from: (first.index ?? 0) + 1 });
    expect(next[1]).toBe("READY");
    const err = await vm.waitFor("never printed", 5_000).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect(String(err)).toContain("QEMU exited (code 0) before the console showed never printed");
    expect(String(err)).toContain("harness: powering off");
  });

  test("bootVm rejects at once, with QEMU's own message, when QEMU cannot start", async () => {
    const t0 = performance.now();
    const err = await bootVm({
      kernel: { vmlinuz: join(dir, "missing") },
      initrd,
      name: "harness-bad",
    })
      .then(async (vm) => {
        await vm.kill();
        return null;
      })
      .catch((e: Error) => e);
    expect(String(err)).toContain("QEMU exited at start");
    expect(String(err)).toContain("could not open kernel file");
    expect(performance.now() - t0).toBeLessThan(10_000);
  });

  test("kill() ends a running QEMU, frees its port and temp files, and is idempotent", async () => {
    const vm = await bootVm({ kernel, initrd, hostfwd: [9999], name: "harness-kill" });
    let port = 0;
    try {
      port = vm.ports[9999] ?? 0;
      await vm.waitFor("harness: READY", 120_000);
      const err = await vm.waitFor("never printed", 300).catch((e: Error) => e);
      expect(String(err)).toContain("timed out after 300 ms");
      expect(String(err)).toContain("harness: READY");
      expect(alive(vm.pid)).toBe(true);
    } finally {
      await vm.kill();
    }
    expect(vm.running).toBe(false);
    expect(alive(vm.pid)).toBe(false);
    expect(await portFree(port)).toBe(true);
    await vm.kill();
    expect(existsSync(vm.logFile)).toBe(true);
  });
});
