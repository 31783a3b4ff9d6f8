/**
 * Injector issue, in QEMU: images made by deployVm from the rootfs templates
 * boot with hero-init as PID 1 and serve :9999 — an initramfs (busybox, no
 * glibc: private loader), an ext4 disk through the tiny boot initramfs
 * (plain) or the switch-root initramfs (its fallback, and with a tmpfs
 * overlay), and the Debian template.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readConcatenated } from "../../host/cpio/newc.ts";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { testVmToml } from "../vm/image.ts";
import { bootVm, READY, SERVICES_STARTED } from "../vm/qemu.ts";

type AsyncDisposableVm = Awaited<ReturnType<typeof bootVm>>;

setDefaultTimeout(900_000);
let kernel: Kernel;
let dir: string;
const vm = parseToml(testVmToml(), "test vm.toml") as VmConfigInput;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-deploy-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A service that shows the guest's own mount table and writes a file without syncing it. */
const PROBE = {
  probe:
    "exec: sh -c \"sed 's/^/MOUNTED /' /proc/mounts; echo DATA-6d1f > /probe-data; echo PROBE-WROTE\"\noneshot: true\nlog: stdout\n",
};

/** Runs debugfs -R on an image (read-only) and returns its stdout. */
function debugfs(image: string, request: string): string {
  return Bun.spawnSync(["debugfs", "-R", request, image], { stderr: "pipe" }).stdout.toString();
}

async function bootAndCheck(
  d: Deployment,
  name: string,
  during?: (v: AsyncDisposableVm) => Promise<void>,
): Promise<string> {
  await using v = await bootVm({
    kernel: d.kernel,
    initrd: d.initrd,
    append: d.kernelCmdline,
    disks: d.disk ? [{ path: d.disk }] : [],
    hostfwd: [9999],
    name,
  });
  await v.waitFor(READY, 240_000);
  const res = await fetch(`http://127.0.0.1:${v.ports[9999]}/health`);
  expect(res.status).toBe(200);
  expect(await res.json()).toMatchObject({ status: "ok", hostname: "hero-test" });
  // Callers assert on the services' lines: a power-off before they are all loaded would skip some.
  await v.waitFor(SERVICES_STARTED, 60_000);
  await during?.(v);
  await v.powerdown();
  expect(await v.waitExit(90_000)).toBe(0);
  return v.console();
}

describe("deploy_vm boots", () => {
  test("minimal template as an initramfs (busybox, no glibc → private loader)", async () => {
    const key =
      "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHeroInitTestKeyHeroInitTestKeyHeroInit operator@example";
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, "min-cpio"),
      vm: { ...vm, ssh_authorized_keys: [key] },
      kernel,
    });
    expect(d.report.privateLoader).toBe(true);
    expect(d.agentToken).toMatch(/^[0-9a-f]{64}$/);
    // The one-time UI password: 0600 next to the image; only its hash is in the VM.
    const pwFile = d.uiPasswordFile as string;
    expect(statSync(pwFile).mode & 0o777).toBe(0o600);
    const password = readFileSync(pwFile, "utf8").trim();
    const files = new Map(
      readConcatenated(new Uint8Array(readFileSync(d.image)))
        .flat()
        .map((r) => [r.path, r]),
    );
    const vmToml = new TextDecoder().decode(files.get("etc/hero-init/vm.toml")?.data);
    expect(vmToml).not.toContain(password);
    const hash = /password_hash = "([^"]+)"/.exec(vmToml)?.[1] as string;
    expect(await Bun.password.verify(password, hash)).toBe(true);
    expect((files.get("etc/hero-init/vm.toml")?.mode ?? 0) & 0o777).toBe(0o600);
    expect(new TextDecoder().decode(files.get("root/.ssh/authorized_keys")?.data)).toBe(`${key}\n`);
    expect((files.get("root/.ssh/authorized_keys")?.mode ?? 0) & 0o777).toBe(0o600);
    expect((files.get("root/.ssh")?.mode ?? 0) & 0o777).toBe(0o700);
    const out = await bootAndCheck(d, "deploy-min-cpio");
    expect(out).toContain("supervisor: syslogd: Spawned → Running");
    expect(out).toMatch(/reboot: Power down/);
  });

  test("a job secret is written 0600 where [job] secret_file says, never into deployment.json", async () => {
    const secret = new TextEncoder().encode("job-token-shortlived-42");
    const jobVm = {
      ...vm,
      job: {
        secret_file: "/etc/hero-init/job.secret",
        runner: { url: "http://192.0.2.1/runner", sha256: "0".repeat(64), size: 10 },
      },
    };
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, "min-job"),
      vm: jobVm,
      kernel,
      jobSecret: secret,
    });
    const files = new Map(
      readConcatenated(new Uint8Array(readFileSync(d.image)))
        .flat()
        .map((r) => [r.path, r]),
    );
    const f = files.get("etc/hero-init/job.secret");
    expect(new TextDecoder().decode(f?.data)).toBe("job-token-shortlived-42");
    expect((f?.mode ?? 0) & 0o777).toBe(0o600);
    expect(readFileSync(join(dir, "min-job/deployment.json"), "utf8")).not.toContain("shortlived");
    // Without a [job] section the secret has nowhere to go: refused, nothing written.
    await expect(
      deployVm({
        template: "minimal",
        format: "initramfs",
        out: join(dir, "min-nojob"),
        vm,
        kernel,
        jobSecret: secret,
      }),
    ).rejects.toThrow(/no \[job\] section/);
    expect(existsSync(join(dir, "min-nojob"))).toBe(false);
  });

  test("minimal template as an ext4 disk, through the tiny boot initramfs", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "ext4",
      out: join(dir, "min-ext4"),
      vm,
      kernel,
      services: PROBE,
    });
    expect(d.kernelCmdline).toBe("root=/dev/vda rw");
    const out = await bootAndCheck(d, "deploy-min-ext4", async (v) => {
      await v.waitFor("PROBE-WROTE", 60_000);
    });
    // The kernel's own mount table: the disk is the root, read-write.
    expect(out).toMatch(/MOUNTED \/dev\/vda \/ ext4 rw/);
    // The shutdown path (sync, reverse unmount, remount read-only) kept the
    // unsynced write and left a clean file system.
    const disk = d.disk as string;
    const fsck = Bun.spawnSync(["e2fsck", "-fn", disk], { stdout: "pipe", stderr: "pipe" });
    expect({ code: fsck.exitCode, out: fsck.stdout.toString() }).toMatchObject({ code: 0 });
    expect(debugfs(disk, "cat /probe-data")).toBe("DATA-6d1f\n");
    // deployVm's default boot initramfs: the pre-init alone mounts the disk (host/boot-initramfs.ts).
    expect(out).toContain("hero-init preinit: switched root to /dev/vda, exec /sbin/init");
    expect(out).toContain("supervisor: syslogd: Spawned → Running");
  });

  test("switch-root fallback: no init on the disk, or no disk at all, and the VM runs on from the initramfs", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "ext4",
      out: join(dir, "min-fallback"),
      vm,
      kernel,
      // hero-init's switch-root step (the tiny default initramfs has no hero-init to stay in).
      bootInitramfs: "hero-init",
    });
    const cases = [
      {
        name: "no-init",
        disks: [{ path: d.disk as string }],
        append: `${d.kernelCmdline} hero.rootinit=/sbin/none`,
        reason: "/dev/vda has no /sbin/none; staying in the initramfs",
      },
      {
        name: "no-disk",
        disks: [],
        append: d.kernelCmdline,
        reason: "/dev/vda did not appear within 10 s; staying in the initramfs",
      },
    ];
    for (const c of cases) {
      await using v = await bootVm({
        kernel: d.kernel,
        initrd: d.initrd,
        append: c.append,
        disks: c.disks,
        name: `deploy-fallback-${c.name}`,
      });
      await v.waitFor(c.reason, 120_000);
      // Still PID 1, from the initramfs: boot goes on, and the ACPI button powers off cleanly.
      await v.waitFor(READY, 120_000);
      expect(v.console()).not.toContain("switching to /dev/vda");
      await v.powerdown();
      expect(await v.waitExit(90_000)).toBe(0);
      expect(v.console()).toMatch(/reboot: Power down/);
    }
  });

  test("ext4 disk under a tmpfs overlay", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "ext4",
      out: join(dir, "min-ovl"),
      vm,
      kernel,
      overlay: true,
      services: PROBE,
    });
    const out = await bootAndCheck(d, "deploy-min-overlay", async (v) => {
      await v.waitFor("PROBE-WROTE", 60_000);
    });
    expect(out).toContain("switching to /dev/vda (overlay, writes go to RAM)");
    // The guest's root is the overlay; the write went to RAM, not to the disk.
    expect(out).toMatch(/MOUNTED \S+ \/ overlay /);
    const disk = d.disk as string;
    expect(debugfs(disk, "stat /probe-data")).toBe("");
    expect(Bun.spawnSync(["e2fsck", "-fn", disk]).exitCode).toBe(0);
  });

  test("debian template (debootstrap minbase) as an ext4 disk", async () => {
    const d = await deployVm({
      template: "debian",
      format: "ext4",
      out: join(dir, "deb-ext4"),
      vm,
      kernel,
    });
    expect(d.report.privateLoader).toBe(false);
    // The template's ldconfig oneshot runs to its end before the power button
    // (READY means it was spawned, not that it finished).
    // A running oneshot shows Running (zinit's states), so Success follows Spawned or Running.
    const out = await bootAndCheck(d, "deploy-debian", (v) =>
      v
        .waitFor(/supervisor: ldconfig: (Spawned|Running) → (Success|Error)/, 120_000)
        .then(() => {}),
    );
    expect(out).toMatch(/supervisor: ldconfig: (Spawned|Running) → Success/);
  });
});
