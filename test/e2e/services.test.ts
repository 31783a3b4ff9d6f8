/**
 * Supervisor and PID 1 duties in a real VM: services start in dependency
 * order and stop in reverse, SIGTERM to PID 1 powers off, orphans of
 * double-forking processes are reaped, `zinit list` works inside the guest,
 * and job mode reports HERO-EXIT with the right code before powering off.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { expectInOrder } from "../order.ts";
import { buildImage, serviceFiles, testVmToml } from "../vm/image.ts";
import { bootVm, READY } from "../vm/qemu.ts";

setDefaultTimeout(240_000);
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-svc-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const services = serviceFiles;

async function image(name: string, files: Record<string, string>, vmExtra = "", memMB?: number) {
  const initrd = await buildImage(join(dir, `${name}.cpio`), {
    kernel,
    busybox: true,
    vmToml: testVmToml(vmExtra),
    extra: services(files),
  });
  return { initrd, memMB };
}

describe("services in the VM", () => {
  test("dependency order at boot, reverse order at shutdown, SIGTERM to PID 1 powers off", async () => {
    const { initrd } = await image("order", {
      a: `exec: sleep 1000\n`,
      b: `exec: sleep 1001\nafter: [a]\n`,
      c: `exec: sleep 1002\nafter: [b]\n`,
      // after: [c]: c is Running when list starts. after: [list]: list has exited, and a
      // service's exit is reported once its output is drained (guest/supervisor/process.ts).
      list: `exec: zinit list\noneshot: true\nafter: [c]\nlog: stdout\n`,
      term: `exec: sh -c "kill -TERM 1"\noneshot: true\nafter: [list]\n`,
    });
    await using vm = await bootVm({ kernel, initrd, name: "svc-order" });
    await vm.waitFor(READY);
    expect(await vm.waitExit(90_000)).toBe(0);
    const out = vm.console();
    expectInOrder(out, /a: Blocked → Spawned/, /a: Spawned → Running/, /b: Blocked → Spawned/);
    expectInOrder(out, /b: Spawned → Running/, /c: Blocked → Spawned/);
    // `zinit list` inside the guest, printed by the service through log: stdout
    expect(out).toMatch(/hero-init list: ---/);
    expect(out).toMatch(/hero-init list: c: Running/);
    expect(out).toContain("shutdown: poweroff: SIGTERM");
    expectInOrder(out, /shutdown: stopping c/, /shutdown: stopping b/, /shutdown: stopping a/);
    expect(out).toMatch(/reboot: Power down/);
  });

  test("orphans of a double-forking process are reaped: no zombies left", async () => {
    // Positive control: 20 orphans are counted while they run (re-parented to
    // PID 1, a sleep duration unique to them), then counted again once they
    // have exited: none is left as a zombie.
    const { initrd } = await image("orphans", {
      forker: `exec: sh -c "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do (sh -c 'exec sleep 8.321' &) ; done; sleep 1000"\n`,
      // o: living orphans (sleep, parent 1, our duration; the pattern does not match itself).
      count: `exec: sh -c "o() { for f in /proc/[0-9]*/status; do grep -q '^Name:.sleep$' $f && grep -q '^PPid:.1$' $f && grep -q '8.32[1]' \${f%status}cmdline && echo x; done 2>/dev/null | wc -l; }; n=0; for i in $(seq 60); do n=$(o); [ $n -ge 20 ] && break; sleep 1; done; echo ORPHANS=$n; for i in $(seq 60); do [ $(o) -eq 0 ] && break; sleep 1; done; echo ZOMBIES=$(grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l) LEFT=$(o)"\noneshot: true\nafter: [forker]\nlog: stdout\n`,
    });
    await using vm = await bootVm({ kernel, initrd, name: "svc-orphans" });
    await vm.waitFor(READY);
    expect(await vm.waitFor(/ORPHANS=\d+/, 60_000)).toBe("ORPHANS=20");
    expect(await vm.waitFor(/ZOMBIES=\d+ LEFT=\d+/, 60_000)).toBe("ZOMBIES=0 LEFT=0");
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
  });
});

describe("job mode", () => {
  const cases: [string, string, number, RegExp, number?][] = [
    ["exit0", `exec: sh -c "echo working; exit 0"\n`, 0, /message="success"/],
    ["exit3", `exec: sh -c "exit 3"\n`, 3, /message="exit status 3"/],
    ["kill9", `exec: sh -c "kill -9 \\$\\$"\n`, 137, /message="killed by SIGKILL"/],
    [
      "missing",
      `exec: /usr/bin/no-such-runner --flag\n`,
      127,
      /message="command not found: hero-exec: cannot exec \/usr\/bin\/no-such-runner: No such file or directory"/,
    ],
    [
      "oom",
      `exec: sh -c "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"\n`,
      137,
      /message="killed by SIGKILL - OOM"/,
      768,
    ],
  ];
  for (const [name, yaml, code, msg, mem] of cases) {
    test(`${name}: HERO-EXIT code=${code}, then power-off`, async () => {
      const { initrd } = await image(`job-${name}`, { job: yaml }, `\n[job]\nservice = "job"\n`);
      await using vm = await bootVm({ kernel, initrd, name: `job-${name}`, memMB: mem ?? 1024 });
      const line = await vm.waitFor(/HERO-EXIT code=\d+ message="[^"\n]*"/, 120_000);
      expect(line).toContain(`HERO-EXIT code=${code} `);
      expect(line).toMatch(msg);
      expect(await vm.waitExit(60_000)).toBe(0);
      expect(vm.console()).toMatch(/reboot: Power down/);
    });
  }
});
