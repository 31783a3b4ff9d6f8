/**
 * VM TEST (boots QEMU under TCG, three boots): `[[volumes]]` (issue 18).
 * deploy_vm makes the volume images and the VM gets them as virtio disks:
 * /data by serial (read-write, owner and mode set), /shared by label
 * (read-only: writing fails, mounted ro,nosuid,nodev,noexec), /fresh by
 * serial on a blank image the guest formats itself (mkfs = true, with the
 * rootfs's mke2fs), and /absent, whose disk is not there: a clear error
 * after its wait, and the VM boots. A counter on /data goes 1, 2, 3 across
 * a power cycle and a redeploy of the root, and /fresh is formatted once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { testVmToml } from "../vm/image.ts";
import { bootVm, READY } from "../vm/qemu.ts";

setDefaultTimeout(900_000);
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-volumes-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const VOLUMES = `
[[volumes]]
serial = "data"
path = "/data"
size_mb = 32
owner = "1000:1000"
mode = "0750"

[[volumes]]
label = "SHARED"
path = "/shared"
readonly = true
size_mb = 16

[[volumes]]
serial = "fresh"
path = "/fresh"
mkfs = true
size_mb = 16

[[volumes]]
serial = "absent"
path = "/absent"
wait = 3
`;

/** Counts boots on /data, marks /fresh once, and prints what the test checks. */
const PROBE =
  "exec: \"sh -c 'c=$(cat /data/count 2>/dev/null || echo 0); c=$((c+1)); echo $c > /data/count; " +
  "m=$(cat /fresh/mark 2>/dev/null || echo none); [ -f /fresh/mark ] || echo boot$c > /fresh/mark; sync; " +
  "echo VOLS count=$c fresh=$m own=$(stat -c %u:%g:%a /data) " +
  "shared=$(touch /shared/x 2>/dev/null && echo writable || echo refused) " +
  "opts=$(grep -w /shared /proc/mounts | cut -d, -f1-4) absent=$(grep -c -w /absent /proc/mounts) END'\"\n" +
  "oneshot: true\nlog: stdout\n";

const deploy = () =>
  deployVm({
    template: "minimal",
    out: join(dir, "vm"),
    vm: parseToml(testVmToml(VOLUMES), "vm.toml") as VmConfigInput,
    services: { probe: PROBE },
    kernel,
  });

async function bootAndProbe(
  d: Deployment,
  name: string,
): Promise<{ line: string; console: string }> {
  await using v = await bootVm({
    kernel,
    initrd: d.initrd,
    disks: (d.volumes ?? []).map((x) => ({ path: x.path, serial: x.serial })),
    name,
  });
  await v.waitFor(READY);
  const line = await v.waitFor(/VOLS count=.* END/, 120_000);
  await v.powerdown();
  expect(await v.waitExit(60_000)).toBe(0);
  return { line, console: v.cleanConsole() };
}

describe("volumes (QEMU)", () => {
  test("by serial and label, ro and rw, mkfs opt-in, a missing one; data survives a power cycle and a redeploy of the root", async () => {
    const d1 = await deploy();
    expect((d1.volumes ?? []).map((x) => [x.mount, x.serial])).toEqual([
      ["/data", "data"],
      ["/shared", undefined],
      ["/fresh", "fresh"],
    ]);
    const b1 = await bootAndProbe(d1, "volumes-1");
    expect(b1.line).toContain("count=1 fresh=none own=1000:1000:750 shared=refused ");
    expect(b1.line).toMatch(/opts=\/dev\/vd[a-z] \/shared ext4 ro,nosuid,nodev,noexec /);
    expect(b1.line).toContain("absent=0 END");
    expect(b1.console).toMatch(/volumes: \/fresh: formatting blank \/dev\/vd[a-z]/);
    expect(b1.console).toMatch(
      /VOLUME ERROR \/absent \(serial "absent"\): no device with serial "absent" after 3 s/,
    );

    // a power cycle: same disks
    const b2 = await bootAndProbe(d1, "volumes-2");
    expect(b2.line).toContain("count=2 fresh=boot1 ");
    expect(b2.console).not.toContain("formatting blank");

    // a redeploy of the root: a new rootfs, the volume images kept
    const d2 = await deploy();
    expect(d2.volumes).toEqual(d1.volumes);
    const b3 = await bootAndProbe(d2, "volumes-3");
    expect(b3.line).toContain("count=3 fresh=boot1 own=1000:1000:750 ");
  });
});
