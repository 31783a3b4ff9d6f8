/**
 * Records the bytecode-order profiles scripts/build.sh lays dist/hero-init out by
 * (`bun build --bytecode-order`, docs/ARCHITECTURE.md "Startup weight"):
 *
 * - scripts/bytecode-order/pid1.order: a VM boots the test image with hero-init as PID 1
 *   (10 idle services, the UI), answers /health, and shuts down on ctrl-alt-del. Bun writes
 *   the profile only when the process exits, so with `BUN_BYTECODE_ORDER_OUT` on the kernel
 *   command line PID 1 exits at the end of its shutdown (guest/pid1/shutdown.ts) and the
 *   kernel panics, which ends QEMU (`panic=-1`, `-no-reboot`). The file lands on an ext2
 *   disk mounted `sync` by a oneshot service; debugfs reads it on the host.
 * - scripts/bytecode-order/cli.order: `hero-init list` against `hero-init init` on the host.
 *
 * A profile matches functions by a hash of their syntax, so one recorded from an older build
 * still applies; re-record after large changes. Needs dist/ built, QEMU, e2fsprogs.
 *
 * Run: node_modules/.bin/bun scripts/record-bytecode-order.ts
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { writeNewc } from "../host/cpio/newc.ts";
import { ensureKernel } from "../host/kernel.ts";
import { ROOT_MODULES } from "../lib/kernel-modules.ts";
import { hostSupervisor } from "../test/helpers/host-supervisor.ts";
import { until } from "../test/helpers/poll.ts";
import { imageEntries, serviceFiles, testVmToml } from "../test/vm/image.ts";
import { bootVm } from "../test/vm/qemu.ts";

const ROOT = join(import.meta.dir, "..");
const HERO = join(ROOT, "dist/hero-init");
const OUT = join(ROOT, "scripts/bytecode-order");
const work = mkdtempSync(join(tmpdir(), "hero-order-"));

/** A profile is `v2` and then one `<kind> <16 hex digits>` line per function or module. */
function checkProfile(text: string, what: string): string {
  const lines = text.trimEnd().split("\n");
  if (
    lines[0] !== "v2" ||
    lines.length < 100 ||
    !lines.slice(1).every((l) => /^[A-Z] [0-9a-f]{16}$/.test(l))
  )
    throw new Error(
      `${what}: not a bytecode-order profile (${lines.length} lines, first "${lines[0]}")`,
    );
  return `${lines.join("\n")}\n`;
}

function run(argv: string[]): string {
  const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

async function recordPid1(): Promise<string> {
  const kernel = await ensureKernel();
  const services: Record<string, string> = {
    order:
      "exec: sh -c 'mkdir -p /order && mount -t ext2 -o sync,dirsync /dev/vda /order && echo order-disk-mounted'\noneshot: true\nlog: stdout\n",
  };
  for (let i = 0; i < 10; i++) services[`idle${i}`] = "exec: sleep 100000\n";
  const modules = ["virtio_net", ...ROOT_MODULES.filter((m) => m !== "overlay")];
  const vmToml = testVmToml().replace(/^modules = .*$/m, `modules = ${JSON.stringify(modules)}`);
  const initrd = join(work, "image.cpio");
  writeFileSync(
    initrd,
    writeNewc(
      await imageEntries({ kernel, modules, busybox: true, vmToml, extra: serviceFiles(services) }),
    ),
  );
  const disk = join(work, "order.ext2");
  run(["mke2fs", "-q", "-t", "ext2", disk, "16M"]);
  {
    await using vm = await bootVm({
      kernel,
      initrd,
      memMB: 1024,
      hostfwd: [9999],
      disks: [{ path: disk }],
      append: "BUN_BYTECODE_ORDER_OUT=/order/pid1.order",
      name: "record-bytecode-order",
    });
    await vm.waitFor(/hero-init boot: READY/, 180_000);
    await vm.waitFor(/order-disk-mounted/, 60_000);
    const url = `http://127.0.0.1:${vm.ports[9999]}/health`;
    for (let i = 0; i < 10; i++) {
      await until(`GET ${url}`, async () => (await fetch(url)).status === 200, 30_000, 100);
    }
    await vm.sendCtrlAltDel();
    await vm.waitFor(/exiting to write the bytecode-order profile/, 120_000);
    await vm.waitExit(60_000);
  }
  return checkProfile(run(["debugfs", "-R", "cat /pid1.order", disk]), "the VM's profile");
}

async function recordCli(): Promise<string> {
  await using sup = await hostSupervisor(HERO, work);
  const path = join(work, "cli.order");
  if (sup.list({ BUN_BYTECODE_ORDER_OUT: path }).exitCode !== 0)
    throw new Error("hero-init list failed");
  return checkProfile(readFileSync(path, "utf8"), "hero-init list's profile");
}

try {
  const pid1 = await recordPid1();
  const cli = await recordCli();
  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, "pid1.order"), pid1);
  writeFileSync(join(OUT, "cli.order"), cli);
  console.log(
    `record-bytecode-order: pid1.order ${pid1.split("\n").length - 2} entries, cli.order ${cli.split("\n").length - 2} entries (${OUT})`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
