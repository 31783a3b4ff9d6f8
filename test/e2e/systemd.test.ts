/**
 * The systemd hand-off in QEMU: the debian-systemd template (debootstrap
 * with systemd, udev, dbus, openssh-server; its base cached under
 * ~/.cache/hero-init by scripts/setup.sh) deployed as an ext4 disk with
 * `init = "systemd"`, the real mycelium (test/vendor.ts) and hero-init
 * pinned by a signed deploy manifest. hero-init boots as the kernel's init
 * (switch root from the boot initramfs into the disk), does the early boot,
 * writes hero-init.service into /run/systemd/system and execs the image's
 * systemd as PID 1.
 *
 * Checked, in one VM, in order: systemd reaches `running` or `degraded`
 * (the failed units are printed as the reason); the UI's /health and the
 * agent answer from the host; a zinit service file runs under
 * hero-init.service (in its delegated cgroup) and the zinit CLI sees it;
 * mycelium runs under the unit and has its address; a restart of
 * hero-init.service through systemctl brings everything back with new
 * pids; a new hero-init published in the manifest becomes a unit restart
 * (new version answering, boot path switched); the environment's access
 * section makes the updater write the sshd drop-in and reload the image's
 * running ssh.service (sshd logs the SIGHUP, same pid); `systemctl poweroff` ends
 * QEMU by itself with a clean ext4 (e2fsck -fn). systemd under TCG on a
 * loaded machine is slow: every wait is a bounded poll.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient } from "../../host/agent-client.ts";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { isHeroError } from "../../lib/errors.ts";
import { formatPublicKey, generateKey, type SecretKey } from "../../lib/minisign.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { runChecked } from "../../sys/command.ts";
import { buildManifest } from "../../update/publish.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";
import { until } from "../helpers/poll.ts";
import { publishManifest } from "../helpers/publish-manifest.ts";
import { fakeKey } from "../helpers/ssh-keys.ts";
import { vendorBinary } from "../vendor.ts";
import { fsckReadOnly } from "../vm/ext4-disk.ts";
import { buildImage, serviceFiles, testVmToml } from "../vm/image.ts";
import { MYCELIUM_VERSION } from "../vm/mycelium-node.ts";
import { bootVm, type Vm } from "../vm/qemu.ts";
import {
  type Build,
  buildHeroInitVersion,
  fileSha256,
  reportedVersion,
} from "../vm/second-build.ts";

setDefaultTimeout(1_500_000);
const ROOT = join(import.meta.dir, "../..");
let kernel: Kernel;
let dir: string;
let pub: string;
let key: SecretKey;
let server: BootstrapServer;
let manifestVersion = 0;
let d: Deployment;
let vm: Vm;
let agent: AgentClient;
let health: string;
/** The hero-init the VM boots (a copy of dist/hero-init) and the one the manifest offers later. */
let OLD: Build;
let NEXT: Build;

const HELLO = `exec: /bin/sh -c "echo hello-from-zinit; exec sleep 100000"\n`;

async function run(argv: string[]): Promise<{ exit: number; out: string }> {
  const out: Uint8Array[] = [];
  const res = await agent.exec(
    { argv },
    {
      stdout: (b) => void out.push(b.slice()),
      stderr: (b) => void out.push(b.slice()),
    },
  );
  return { exit: res.code, out: Buffer.concat(out).toString().trim() };
}

/**
 * run() for a command that stops hero-init (and with it the agent that runs
 * it): an answer cut short is expected, any other error is not.
 */
async function runCut(argv: string[]): Promise<void> {
  try {
    const r = await run(argv);
    expect(r.exit).toBe(0);
  } catch (e) {
    if (!isHeroError(e, "agent")) throw e;
  }
}

/** A `[vm]` binary in the publisher directory `root`. */
function addBinary(root: string, name: string, v: string, from: string, services: string[]) {
  const bin = join(root, "vm", name, v);
  mkdirSync(bin, { recursive: true });
  copyFileSync(from, join(bin, name));
  writeFileSync(
    join(root, "vm", name, "meta.toml"),
    `services = [${services.map((s) => JSON.stringify(s)).join(", ")}]\n`,
  );
}

/** A `[vm]` binary that is a systemd unit's program: it writes its version where the test reads it. */
function greeter(root: string, v: string): void {
  const src = join(dir, `greeter-${v}`);
  writeFileSync(src, `#!/bin/sh\necho "greeter ${v}" > /run/greeter.version\nexec sleep 100000\n`, {
    mode: 0o755,
  });
  addBinary(root, "greeter", v, src, ["greeter"]);
}

const GREETER_UNIT = `[Unit]
Description=greeter, a [vm] binary run by systemd

[Service]
ExecStart=/usr/bin/greeter
`;

/** Signs and publishes the live manifest (what the VM's updater follows). */
function publish(): void {
  publishManifest(pub, `http://10.0.2.2:${server.port}/`, ++manifestVersion, key);
}

const mainPid = async () =>
  Number(
    (await run(["/usr/bin/systemctl", "show", "-p", "MainPID", "--value", "hero-init.service"]))
      .out,
  );
const zinitPid = async (name: string) => {
  const r = await run(["/usr/bin/zinit", "status", name]);
  return /state: Running/.test(r.out) ? Number(/^pid: (\d+)$/m.exec(r.out)?.[1]) : 0;
};
const healthJson = async () =>
  (await (await fetch(health)).json()) as {
    version: string;
    mycelium: { state?: string; address?: string } | null;
  };

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-systemd-"));
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("systemd hand-off", () => {
  beforeAll(async () => {
    key = generateKey();
    pub = join(dir, "pub");
    mkdirSync(pub);
    server = startServer({ dir: pub, hostname: "127.0.0.1", port: 0, log: () => {} });
    const oldPath = join(dir, "old-hero-init");
    copyFileSync(join(ROOT, "dist/hero-init"), oldPath);
    OLD = { path: oldPath, version: reportedVersion(oldPath), sha256: fileSha256(oldPath) };
    // The deploy manifest pins hero-init (OLD) and brings the real mycelium; the live one
    // starts with mycelium only (the same version: nothing to do until a new hero-init comes).
    const dpub = join(pub, "deploy");
    addBinary(dpub, "hero-init", OLD.version, OLD.path, []);
    addBinary(dpub, "mycelium", MYCELIUM_VERSION, vendorBinary("mycelium"), ["mycelium"]);
    addBinary(pub, "mycelium", MYCELIUM_VERSION, vendorBinary("mycelium"), ["mycelium"]);
    greeter(dpub, "1.0.0");
    greeter(pub, "1.0.0");
    const deployManifest = join(dir, "deploy.toml");
    writeFileSync(
      deployManifest,
      buildManifest(dpub, {
        baseUrl: `http://127.0.0.1:${server.port}/deploy/`,
        version: 1,
        expires: new Date(Date.now() + 86_400_000),
      }),
    );
    publish();
    const config = parseToml(
      testVmToml(`
  [agent]
  listen = ["0.0.0.0"]
  allow = ["10.0.2.2/32"]

  [mycelium]

  [update]
  env = "testing"
  manifest = "http://10.0.2.2:${server.port}/bootstrapper.toml"
  key = "${formatPublicKey(key).split("\n")[1]}"
  interval = 5
  jitter = 0.2
  health_seconds = 2
  `),
      "vm.toml",
    ) as VmConfigInput;
    // The template's vm.toml says init = "systemd"; said again so the test does not depend on it.
    d = await deployVm({
      template: "debian-systemd",
      format: "ext4",
      out: join(dir, "vm"),
      manifest: deployManifest,
      vm: { ...config, init: "systemd" },
      services: { hello: HELLO },
      kernel,
    });
    // The template's image is sized to its content; a self-update needs room for a second
    // hero-init next to the first: the disk is grown as an operator would.
    for (const argv of [
      ["truncate", "-s", "+512M", d.disk as string],
      ["e2fsck", "-fp", d.disk as string],
      ["resize2fs", d.disk as string],
    ])
      runChecked(argv);
    vm = await bootVm({
      kernel,
      initrd: d.initrd,
      disks: [{ path: d.disk as string }],
      // ip=dhcp: slirp's lease before the hand-off, and the DHCP client runs on under the unit.
      append: `${d.kernelCmdline} ip=dhcp`,
      memMB: 1536,
      hostfwd: [9999, 9998],
      name: "systemd-handoff",
    });
    agent = new AgentClient({ url: `http://127.0.0.1:${vm.ports[9998]}`, token: d.agentToken });
    health = `http://127.0.0.1:${vm.ports[9999]}/health`;
  });
  afterAll(async () => {
    await vm?.kill();
    await server?.stop();
  });

  test("systemd becomes PID 1 and reaches running or degraded; UI and agent answer", async () => {
    await vm.waitFor(/hero-init systemd: handing PID 1 to \/\S*systemd/, 600_000);
    await until(
      "the UI's /health under systemd",
      async () => (await fetch(health)).ok,
      600_000,
      3000,
      () => vm.diagnostics(),
    );
    await until(
      "the agent under systemd",
      async () => (await run(["/bin/true"])).exit === 0,
      300_000,
      3000,
    );
    expect((await run(["/bin/cat", "/proc/1/comm"])).out).toBe("systemd");
    const state = await until(
      "systemctl is-system-running: running or degraded",
      async () => {
        const r = await run(["/usr/bin/systemctl", "is-system-running"]);
        return ["running", "degraded"].includes(r.out) ? r.out : false;
      },
      900_000,
      5000,
      () => vm.diagnostics(),
    );
    const failed = await run(["/usr/bin/systemctl", "--failed", "--no-legend", "--plain"]);
    console.log(`systemd: ${state}${failed.out ? `; failed units:\n${failed.out}` : ""}`);
    expect(["running", "degraded"]).toContain(state);
    expect(failed.out).not.toContain("hero-init.service");
    expect((await healthJson()).version).toBe(OLD.version);
    // The lease was taken before the hand-off (console), and the unit's own DHCP client asked
    // again after it (journal of hero-init.service), so renewals go on under systemd.
    expect(vm.cleanConsole()).toMatch(/dhcp: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/);
    const unitLease = await until(
      "the unit's DHCP client holding the lease",
      async () => {
        const j = await run([
          "/usr/bin/journalctl",
          "-u",
          "hero-init.service",
          "-o",
          "cat",
          "--no-pager",
        ]);
        return /dhcp: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2/.test(j.out) ? j.out : false;
      },
      120_000,
      3000,
    );
    expect(unitLease).toContain("dhcp: eth0");
  });

  test("a zinit service file runs under hero-init.service, in its delegated cgroup; zinit sees it", async () => {
    const pid = await until("zinit status: hello Running", () => zinitPid("hello"), 120_000, 2000);
    expect((await run(["/usr/bin/zinit", "list"])).out).toMatch(/hello.*Running/);
    expect((await run(["/bin/cat", `/proc/${pid}/cgroup`])).out).toBe(
      "0::/system.slice/hero-init.service/services/hello",
    );
    expect((await run(["/bin/cat", `/proc/${await mainPid()}/cgroup`])).out).toBe(
      "0::/system.slice/hero-init.service/init",
    );
  });

  test("mycelium runs under the unit and has the address of its key", async () => {
    const h = await until(
      "mycelium up in /health",
      async () => {
        const j = await healthJson();
        return j.mycelium?.state === "up" ? j : false;
      },
      300_000,
      3000,
    );
    expect(h.mycelium?.address).toBe(d.myceliumAddress as string);
    const pid = await zinitPid("mycelium");
    expect((await run(["/bin/cat", `/proc/${pid}/cgroup`])).out).toBe(
      "0::/system.slice/hero-init.service/services/mycelium",
    );
  });

  test("systemctl restart hero-init.service: a new hero-init, services back with new pids", async () => {
    const before = await mainPid();
    const hello = await zinitPid("hello");
    expect(before).toBeGreaterThan(1);
    // The agent's exec runs inside hero-init.service: the restart is queued in a transient
    // timer unit of its own, so this exec can answer first (the polls below decide).
    await runCut([
      "/usr/bin/systemd-run",
      "--on-active=2",
      "--unit=test-restart-hero",
      "/usr/bin/systemctl",
      "restart",
      "hero-init.service",
    ]);
    const after = await until(
      "hero-init.service with a new MainPID, the agent answering",
      async () => {
        const p = await mainPid();
        return p > 1 && p !== before ? p : false;
      },
      300_000,
      3000,
    );
    expect(after).not.toBe(before);
    const helloAfter = await until(
      "hello Running again with a new pid",
      async () => {
        const p = await zinitPid("hello");
        return p > 1 && p !== hello ? p : false;
      },
      180_000,
      2000,
    );
    expect(helloAfter).not.toBe(hello);
    expect((await run(["/usr/bin/systemctl", "is-active", "hero-init.service"])).out).toBe(
      "active",
    );
    expect((await fetch(health)).ok).toBe(true);
  });

  test("a [vm] binary whose service is a systemd unit: the updater restarts it with systemctl", async () => {
    await agent.putFile("/etc/systemd/system/greeter.service", GREETER_UNIT, { mode: 0o644 });
    expect((await run(["/usr/bin/systemctl", "daemon-reload"])).exit).toBe(0);
    expect((await run(["/usr/bin/systemctl", "start", "greeter.service"])).exit).toBe(0);
    await until(
      "greeter 1.0.0 running",
      async () => (await run(["/bin/cat", "/run/greeter.version"])).out === "greeter 1.0.0",
      60_000,
      1000,
    );
    const unitPid = async () =>
      Number(
        (await run(["/usr/bin/systemctl", "show", "-p", "MainPID", "--value", "greeter.service"]))
          .out,
      );
    const before = await unitPid();
    rmSync(join(pub, "vm/greeter/1.0.0"), { recursive: true, force: true });
    greeter(pub, "1.1.0");
    publish();
    await until(
      "greeter 1.1.0 running (restarted by the updater through systemctl)",
      async () => (await run(["/bin/cat", "/run/greeter.version"])).out === "greeter 1.1.0",
      300_000,
      2000,
      () => vm.diagnostics(),
    );
    expect(await unitPid()).not.toBe(before);
    await vm.waitFor(/update: updated: greeter 1\.0\.0 → 1\.1\.0/, 120_000);
    expect((await run(["/usr/bin/readlink", "/usr/lib/hero/pkgs/greeter/current"])).out).toBe(
      "1.1.0",
    );
  });

  test("the environment's access section after the hand-off: the drop-in is written and the image's sshd reloads it, no restart", async () => {
    const ssh = (verb: string[]) => run(["/usr/bin/systemctl", ...verb, "ssh.service"]);
    // systemd started the image's sshd at boot, before hero-init's first update run.
    await until(
      "ssh.service active",
      async () => (await ssh(["is-active"])).out === "active",
      120_000,
      1000,
    );
    const sshdPid = async () => Number((await ssh(["show", "-p", "MainPID", "--value"])).out);
    const before = await sshdPid();
    mkdirSync(join(pub, "access"), { recursive: true });
    writeFileSync(
      join(pub, "access/testing.toml"),
      `[[users]]\nname = "tester"\nkeys = [${JSON.stringify(fakeKey(1))}]\n`,
    );
    publish();
    // sshd's own word that it read its configuration again: systemctl reload is its SIGHUP.
    await until(
      "sshd to log the SIGHUP of systemctl reload",
      async () =>
        /Received SIGHUP/.test(
          (await run(["/usr/bin/journalctl", "-u", "ssh.service", "--no-pager", "-o", "cat"])).out,
        ),
      300_000,
      2000,
      () => vm.diagnostics(),
    );
    expect((await run(["/bin/cat", "/etc/ssh/sshd_config.d/hero-init.conf"])).out).toContain(
      "PasswordAuthentication no",
    );
    expect((await run(["/usr/bin/id", "-u", "tester"])).exit).toBe(0);
    // A reload, not a restart: the same sshd (open sessions stay).
    expect(await sshdPid()).toBe(before);
  });

  test("a new hero-init in the manifest: smoke test, boot path switched, unit restarted into it", async () => {
    NEXT = buildHeroInitVersion(join(dir, "next"), `${OLD.version}-next`);
    const before = await mainPid();
    addBinary(pub, "hero-init", NEXT.version, NEXT.path, []);
    publish();
    await until(
      `/health reports hero-init ${NEXT.version}`,
      async () => (await healthJson()).version === NEXT.version,
      600_000,
      3000,
      () => vm.diagnostics(),
    );
    expect(await mainPid()).not.toBe(before);
    expect((await run(["/usr/bin/readlink", "/usr/lib/hero/pkgs/hero-init/current"])).out).toBe(
      NEXT.version,
    );
    expect((await run(["/usr/bin/sha256sum", "/usr/lib/hero/hero-init"])).out.split(" ")[0]).toBe(
      NEXT.sha256,
    );
    await until(
      "hello Running under the new hero-init",
      async () => (await zinitPid("hello")) > 1,
      180_000,
      2000,
    );
  });

  test("systemctl poweroff: QEMU ends by itself, the ext4 disk is clean", async () => {
    await runCut(["/usr/bin/systemctl", "--no-block", "poweroff"]);
    expect(await vm.waitExit(600_000)).toBe(0);
    const fsck = fsckReadOnly(d.disk as string);
    if (fsck.code !== 0) console.log(fsck.out);
    expect(fsck.code).toBe(0);
  });
});

describe('init = "systemd" on an image without systemd', () => {
  test("hero-init says why and stays PID 1: the VM boots as usual", async () => {
    const initrd = await buildImage(join(dir, "no-systemd.cpio"), {
      kernel,
      busybox: true,
      vmToml: `init = "systemd"\n${testVmToml()}`,
      extra: serviceFiles({ hello: HELLO }),
    });
    await using v = await bootVm({ kernel, initrd, hostfwd: [9999], name: "systemd-absent" });
    await v.waitFor(
      "hero-init systemd: no hand-off: no systemd in the image (looked for /usr/lib/systemd/systemd, /lib/systemd/systemd); hero-init stays PID 1",
      300_000,
    );
    await v.waitFor(/hero-init boot: READY/, 300_000);
    await v.waitFor(/supervisor: hello: Spawned → Running/, 120_000);
    const h = await until(
      "/health from hero-init as PID 1",
      async () => (await fetch(`http://127.0.0.1:${v.ports[9999]}/health`)).ok,
      120_000,
      2000,
    );
    expect(h).toBe(true);
  });
});
