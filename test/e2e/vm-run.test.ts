/**
 * VM TEST (boots QEMU under TCG, ~20-40 s): `hero-init vm run` and a real
 * Ctrl-C (issue 13, finding 15), end to end. The minimal template is
 * deployed as an ext4 disk with a service that writes a file without
 * syncing it; the real dist/hero-init `vm run` boots it with a real QEMU in
 * a real PTY, and the test types "\x03" into the PTY once the file is
 * written, as a user would. The guest must power off on its own (hero-init's
 * shutdown sequence on the console, QEMU exiting 0, not "terminating on
 * signal 2"), and the disk must come back clean with the file in it. The
 * QEMU stand-in version of the same (second Ctrl-C, timeout):
 * test/attack/vm-run-ctrlc.test.ts.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { until } from "../helpers/poll.ts";
import { testVmToml } from "../vm/image.ts";
import { freePort, stripAnsi, VM_LOGS } from "../vm/qemu.ts";

setDefaultTimeout(600_000);
const HERO = join(import.meta.dir, "../../dist/hero-init");
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-vmrun-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Resolves once `fn` is true; throws with the screen after `ms`. */
const waitFor = (what: string, fn: () => boolean, screen: () => string, ms: number) =>
  until(what, fn, ms, 100, () => `screen:\n${screen()}`);

describe("vm run (QEMU)", () => {
  test("Ctrl-C in the terminal powers an ext4 VM off cleanly: shutdown sequence, QEMU exits 0, disk clean", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "ext4",
      out: join(dir, "vm"),
      vm: parseToml(testVmToml(), "test vm.toml") as VmConfigInput,
      kernel,
      services: {
        probe:
          'exec: sh -c "echo DATA-5c2e > /probe-data; echo PROBE-WROTE"\noneshot: true\nlog: stdout\n',
      },
    });
    const disk = d.disk as string;
    let raw = "";
    const decoder = new TextDecoder();
    const screen = () => stripAnsi(raw);
    const proc = Bun.spawn(
      [HERO, "vm", "run", join(dir, "vm"), "--port", String(await freePort())],
      {
        terminal: {
          cols: 200,
          rows: 50,
          data: (_t, b) => {
            raw += decoder.decode(b);
          },
        },
      },
    );
    let code: number | null = null;
    try {
      await waitFor("the probe's write", () => screen().includes("PROBE-WROTE"), screen, 300_000);
      proc.terminal?.write("\x03");
      code = await Promise.race([proc.exited, Bun.sleep(180_000).then(() => null)]);
    } finally {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      mkdirSync(VM_LOGS, { recursive: true });
      writeFileSync(
        join(VM_LOGS, `vm-run-ctrlc-${new Date().toISOString().replaceAll(":", "-")}.log`),
        raw,
      );
    }
    const out = screen();
    expect(code).toBe(0);
    expect(out).toContain("vm run: pressing the power button");
    // hero-init's shutdown sequence, to the kernel's power-off.
    expect(out).toContain("poweroff: ACPI power button");
    expect(out).toMatch(/reboot: Power down/);
    expect(out).toContain("vm run: the VM powered off");
    expect(out).not.toContain("terminating on signal");
    // The disk was unmounted cleanly and kept the unsynced write.
    const fsck = Bun.spawnSync(["e2fsck", "-fn", disk], { stdout: "pipe", stderr: "pipe" });
    expect({ code: fsck.exitCode, out: fsck.stdout.toString() }).toMatchObject({ code: 0 });
    const cat = Bun.spawnSync(["debugfs", "-R", "cat /probe-data", disk], { stderr: "pipe" });
    expect(cat.stdout.toString()).toBe("DATA-5c2e\n");
  });
});
