/**
 * Signed manifest and updates, in QEMU. The host serves a publisher
 * directory with `hero-init serve`; the VM follows it with `[update]`
 * (timer shortened to 5 s). Bumping a `[vm]` binary on the server makes
 * the VM converge on its own: only that binary's service restarts, the old
 * version is removed, the UI shows the new one. A `[vm]` binary whose
 * service fails its readiness test is rolled back: the old version runs
 * again and the failed one is not retried.
 *
 * Self-updates publish a second hero-init built from this tree with another
 * version (test/vm/second-build.ts), so the version PID 1 reports shows
 * which binary runs. Publishing it makes PID 1 re-exec itself: every
 * service keeps its pid and its output keeps flowing. A broken hero-init
 * fails its smoke test and changes nothing; a new hero-init that fails
 * while resuming execs back into the old one (hero.fault=resume), services
 * still untouched. A service killed during the hand-off
 * (hero.fault=handoff-exit) is reaped and restarted by the new PID 1. On an
 * ext4 disk made by deployVm, a confirmed self-update switches the disk's
 * boot path and the reboot boots the new version; a new PID 1 that dies
 * before confirming (hero.fault=confirm-crash) leaves the old one to boot.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CpioEntry } from "../../host/cpio/newc.ts";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { formatPublicKey, generateKey, type SecretKey } from "../../lib/minisign.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { buildManifest, publishSigned } from "../../update/publish.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";
import { fsckReadOnly, glibcBusyboxExt4, readFromExt4 } from "../vm/ext4-disk.ts";
import { buildImage, serviceFiles, testVmToml } from "../vm/image.ts";
import { bootVm, READY, type Vm } from "../vm/qemu.ts";
import {
  type Build,
  buildHeroInitVersion,
  fileSha256,
  reportedVersion,
} from "../vm/second-build.ts";

setDefaultTimeout(900_000);
const ROOT = join(import.meta.dir, "../..");
const enc = new TextEncoder();
let kernel: Kernel;
let dir: string;
let key: SecretKey;
let server: BootstrapServer;
let pub: string;
let version = 0;
let pwHash: string;
/**
 * The running version: a copy of dist/hero-init taken once (it may be rebuilt meanwhile).
 * ext4 VMs boot exactly these bytes; initramfs VMs boot dist/hero-init as test/vm/image.ts
 * reads it (the same version).
 */
let OLD: Build;
/** The same tree built with another version: what self-updates publish. */
let NEXT: Build;

const hello = (v: string) => `#!/bin/sh\necho "hello ${v} started"\nexec sleep 100000\n`;
/** hello with a readiness answer (`hello ready`); an unhealthy one also exits at once. */
const helloWithTest = (v: string, healthy: boolean) =>
  healthy
    ? `#!/bin/sh\n[ "$1" = ready ] && exit 0\necho "hello ${v} started"\nexec sleep 100000\n`
    : `#!/bin/sh\n[ "$1" = ready ] && exit 1\necho "hello ${v} started, exiting at once"\nexit 1\n`;

function addBinary(
  name: string,
  v: string,
  content: string | { copyOf: string },
  services: string[],
  root = pub,
) {
  const d = join(root, "vm", name, v);
  mkdirSync(d, { recursive: true });
  if (typeof content === "string") writeFileSync(join(d, name), content, { mode: 0o755 });
  else copyFileSync(content.copyOf, join(d, name));
  writeFileSync(
    join(root, "vm", name, "meta.toml"),
    `services = [${services.map((s) => JSON.stringify(s)).join(", ")}]\n`,
  );
}

function removeBinaryVersion(name: string, v: string) {
  rmSync(join(pub, "vm", name, v), { recursive: true, force: true });
}

/** Takes a binary off the [vm] section altogether. */
function removeBinary(name: string) {
  rmSync(join(pub, "vm", name), { recursive: true, force: true });
}

function publish(): number {
  version++;
  const text = buildManifest(pub, {
    baseUrl: `http://10.0.2.2:${server.port}/`,
    version,
    expires: new Date(Date.now() + 86400_000),
  });
  const data = enc.encode(text);
  publishSigned(join(pub, "bootstrapper.toml"), data, key, `v${version}`);
  return version;
}

const services = serviceFiles;

/** A binary installed the way the injector lays it out. */
function preinstalled(name: string, v: string, script: string): CpioEntry[] {
  return [
    { type: "dir", path: "usr/lib/hero/pkgs", mode: 0o755 },
    { type: "dir", path: `usr/lib/hero/pkgs/${name}`, mode: 0o755 },
    { type: "dir", path: `usr/lib/hero/pkgs/${name}/${v}`, mode: 0o755 },
    {
      type: "file",
      path: `usr/lib/hero/pkgs/${name}/${v}/${name}`,
      mode: 0o755,
      data: enc.encode(script),
    },
    { type: "symlink", path: `usr/lib/hero/pkgs/${name}/current`, target: v },
    {
      type: "symlink",
      path: `usr/bin/${name}`,
      target: `/usr/lib/hero/pkgs/${name}/current/${name}`,
    },
  ];
}

/** The [ui] password and [update] lines every updating VM gets (appended to testVmToml's [ui]). */
function updateToml(): string {
  const pubLine = formatPublicKey(key).split("\n")[1];
  return `password_hash = ${JSON.stringify(pwHash)}

[update]
manifest = "http://10.0.2.2:${server.port}/bootstrapper.toml"
key = "${pubLine}"
interval = 5
jitter = 0.2
health_seconds = 2
`;
}

const DEFAULT_SERVICES = {
  hello: "exec: /usr/bin/hello\n",
  other: "exec: sleep 100001\n",
  ticker: `exec: sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done'\n`,
};

/** An initramfs VM (dist/hero-init as PID 1) with hello 1.0.0 preinstalled. */
async function bootUpdatingVm(
  name: string,
  append = "",
  o: { hello?: string; services?: Record<string, string> } = {},
): Promise<Vm> {
  const initrd = await buildImage(join(dir, `${name}.cpio`), {
    kernel,
    busybox: true,
    vmToml: testVmToml(updateToml()),
    extra: [
      ...preinstalled("hello", "1.0.0", o.hello ?? hello("1.0.0")),
      ...services(o.services ?? DEFAULT_SERVICES),
    ],
  });
  return bootVm({ kernel, initrd, memMB: 2048, hostfwd: [9999], name, append });
}

type Installed = { name: string; current: string | null; versions: string[] };
type UpdateResultJson = {
  outcome: string;
  changes: { name: string; to: string }[];
  held: { name: string; version: string; reason: string }[];
};

/** A logged-in API client for the VM's UI. */
async function api(vm: Vm) {
  const base = `http://127.0.0.1:${vm.ports[9999]}`;
  // Right after a (re)boot or a re-exec the UI may not listen yet: retry for a while.
  let login: Response | null = null;
  for (let i = 0; i < 60 && !login; i++) {
    login = await fetch(`${base}/api/v1/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ password: "update-test" }),
    }).catch(() => null);
    if (!login) await Bun.sleep(500);
  }
  if (!login) throw new Error("the UI does not answer");
  expect(login.status).toBe(200);
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
  const { csrf } = (await login.json()) as { csrf: string };
  const get = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${base}${path}`, { headers: { cookie } });
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };
  const installedList = async () =>
    (await get<{ installed: Installed[] }>("/api/v1/updates")).installed;
  return {
    /** The version the running PID 1 reports. */
    version: async () => (await get<{ version: string }>("/health")).version,
    pids: async () =>
      Object.fromEntries(
        (await get<{ name: string; pid: number }[]>("/api/v1/services")).map((s) => [
          s.name,
          s.pid,
        ]),
      ),
    service: (name: string) => get<{ state: string; pid: number }>(`/api/v1/services/${name}`),
    logs: async (name: string) =>
      (await get<{ text: string }[]>(`/api/v1/services/${name}/logs`)).map((l) => l.text),
    installedList,
    installed: async () =>
      Object.fromEntries(
        (await installedList()).map((b) => [b.name, `${b.current} [${b.versions.join(",")}]`]),
      ),
    ticks: async () =>
      (await get<{ text: string }[]>("/api/v1/services/ticker/logs"))
        .map((l) => Number(/^tick (\d+)$/.exec(l.text)?.[1]))
        .filter((n) => Number.isFinite(n)),
    /** The UI's "Check now" (admin, CSRF token). */
    check: async (): Promise<UpdateResultJson> => {
      const r = await fetch(`${base}/api/v1/updates/check`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf },
      });
      if (r.status !== 200) throw new Error(`check: HTTP ${r.status} ${await r.text()}`);
      return (await r.json()) as UpdateResultJson;
    },
  };
}

/**
 * An ext4-disk VM made by deployVm's rootfs mode: a glibc + busybox disk
 * into which the injector writes OLD (pinned by a deploy manifest, served
 * from 127.0.0.1 for the host) as the boot path /usr/lib/hero/hero-init,
 * and hello 1.0.0 as a [vm] binary; booted through the boot initramfs
 * deployVm makes (the pre-init mounts the disk and execs its /sbin/init).
 */
async function deployExt4(name: string): Promise<Deployment> {
  const dpub = join(pub, `deploy-${name}`);
  addBinary("hero-init", OLD.version, { copyOf: OLD.path }, [], dpub);
  addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"], dpub);
  const manifest = join(dir, `${name}-deploy.toml`);
  writeFileSync(
    manifest,
    buildManifest(dpub, {
      baseUrl: `http://127.0.0.1:${server.port}/deploy-${name}/`,
      version: 1,
      expires: new Date(Date.now() + 86400_000),
    }),
  );
  const disk = glibcBusyboxExt4(join(dir, `${name}.ext4`));
  return deployVm({
    rootfs: { path: disk, format: "ext4" },
    out: join(dir, name),
    manifest,
    vm: parseToml(testVmToml(updateToml()), "vm.toml") as VmConfigInput,
    services: { hello: "exec: /usr/bin/hello\n" },
    kernel,
    cacheDir: join(dir, "cache"),
  });
}

/** Boots an ext4 deployment; a guest reboot reboots in the same QEMU (same console, same ports). */
function bootExt4(d: Deployment, name: string, append = ""): Promise<Vm> {
  return bootVm({
    kernel,
    initrd: d.initrd,
    disks: [{ path: d.disk as string }],
    append: `${d.kernelCmdline} ${append}`.trim(),
    memMB: 2048,
    hostfwd: [9999],
    noReboot: false,
    name,
  });
}

/** sha256 of the disk's boot path (what the pre-init execs), read on the host. */
const bootPathSha = (disk: string) =>
  new Bun.CryptoHasher("sha256")
    .update(readFromExt4(disk, "/usr/lib/hero/hero-init"))
    .digest("hex");

const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** Empties the publisher's [vm] section (each VM starts with a fresh updater state). */
function resetVmSection() {
  rmSync(join(pub, "vm"), { recursive: true, force: true });
}

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-upd-"));
  pub = join(dir, "pub");
  mkdirSync(pub);
  key = generateKey();
  pwHash = await Bun.password.hash("update-test", { algorithm: "bcrypt", cost: 4 });
  server = startServer({ dir: pub, hostname: "127.0.0.1", port: 0, log: () => {} });
  const oldPath = join(dir, "old-hero-init");
  copyFileSync(join(ROOT, "dist/hero-init"), oldPath);
  OLD = { path: oldPath, version: reportedVersion(oldPath), sha256: fileSha256(oldPath) };
  NEXT = buildHeroInitVersion(join(dir, "next"), `${OLD.version}-next`);
  expect(NEXT.sha256).not.toBe(OLD.sha256);
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("updates in a VM", () => {
  test("a bumped [vm] binary converges on the VM's timer; PID 1 updates itself to a new version keeping every pid; a broken hero-init changes nothing", async () => {
    resetVmSection();
    addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"]);
    const v1 = publish();
    // hero.fault=handoff-exit: the first service (hello) is SIGKILLed right before the re-exec.
    await using vm = await bootUpdatingVm("update", "hero.fault=handoff-exit");
    await vm.waitFor(READY, 240_000);
    await vm.waitFor(new RegExp(`update: update: manifest ${v1}: up-to-date`), 120_000);
    const ui = await api(vm);
    expect(await ui.version()).toBe(OLD.version);
    const before = await ui.pids();
    expect(before.hello).toBeGreaterThan(1);
    expect((await ui.installed()).hello).toBe("1.0.0 [1.0.0]");

    // 1. Bump hello: only hello restarts, 1.0.0 is removed, the UI shows 1.1.0.
    removeBinaryVersion("hello", "1.0.0");
    addBinary("hello", "1.1.0", hello("1.1.0"), ["hello"]);
    publish();
    await vm.waitFor(/updated: hello 1\.0\.0 → 1\.1\.0/, 120_000);
    expect((await ui.installed()).hello).toBe("1.1.0 [1.1.0]");
    const afterBump = await ui.pids();
    expect(afterBump.hello).not.toBe(before.hello);
    expect(afterBump.other).toBe(before.other);
    expect(afterBump.ticker).toBe(before.ticker);

    // 2. A new hero-init: PID 1 re-execs into it and reports its version; every service
    //    keeps its pid, output keeps flowing.
    addBinary("hero-init", NEXT.version, { copyOf: NEXT.path }, []);
    publish();
    await vm.waitFor(
      new RegExp(`resumed as hero-init ${esc(NEXT.version)}: adopted 3 services`),
      300_000,
    );
    await vm.waitFor(
      new RegExp(`self-update to hero-init ${esc(NEXT.version)} confirmed`),
      120_000,
    );
    const ui2 = await api(vm);
    expect(await ui2.version()).toBe(NEXT.version);
    // Every service kept its pid, except hello, killed during the hand-off: the new PID 1
    // reaped it as its adopted child and restarted it.
    const afterSelf = await ui2.pids();
    expect(vm.cleanConsole()).toMatch(/hello: \w+ → (Error|Success) \(killed by SIGKILL\)/);
    expect(afterSelf.hello).toBeGreaterThan(1);
    expect(afterSelf.hello).not.toBe(afterBump.hello);
    expect({ ...afterSelf, hello: 0 }).toEqual({ ...afterBump, hello: 0 });
    expect((await ui2.installed())["hero-init"]).toBe(`${NEXT.version} [${NEXT.version}]`);
    // The ticker's output arrives through the pipe handed over across execve.
    let ticks: number[] = [];
    for (let i = 0; i < 20 && ticks.length < 3; i++) {
      await Bun.sleep(1000);
      ticks = await ui2.ticks();
    }
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks.at(-1)).toBeGreaterThan(10);

    // 3. A broken hero-init fails its smoke test: nothing changes.
    removeBinaryVersion("hero-init", NEXT.version);
    addBinary("hero-init", "3.0.0", "#!/bin/sh\necho broken >&2\nexit 1\n", []);
    publish();
    await vm.waitFor(/failed its smoke test/, 120_000);
    expect(await ui2.pids()).toEqual(afterSelf);
    expect((await ui2.installed())["hero-init"]).toBe(`${NEXT.version} [${NEXT.version}]`);
    expect(await ui2.version()).toBe(NEXT.version);
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("a new hero-init that fails while resuming execs back into the old one; services keep their pids", async () => {
    resetVmSection();
    addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"]);
    publish();
    await using vm = await bootUpdatingVm("update-fault", "hero.fault=resume");
    await vm.waitFor(READY, 240_000);
    await vm.waitFor(/up-to-date/, 120_000);
    const ui = await api(vm);
    const before = await ui.pids();
    addBinary("hero-init", NEXT.version, { copyOf: NEXT.path }, []);
    publish();
    await vm.waitFor(/resume failed: .*fault injection: resume/, 300_000);
    await vm.waitFor(
      new RegExp(`self-update to hero-init ${esc(NEXT.version)} rolled back`),
      120_000,
    );
    const ui2 = await api(vm);
    // The old binary runs again (the new one would report NEXT).
    expect(await ui2.version()).toBe(OLD.version);
    expect(await ui2.pids()).toEqual(before);
    // The failed version is gone and nothing was confirmed.
    expect((await ui2.installed())["hero-init"]).toBeUndefined();
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("a [vm] binary whose service is unhealthy is rolled back: the old version runs again, the failed one is remembered and not retried", async () => {
    resetVmSection();
    addBinary("hello", "1.0.0", helloWithTest("1.0.0", true), ["hello"]);
    const v1 = publish();
    await using vm = await bootUpdatingVm("update-unhealthy", "", {
      hello: helloWithTest("1.0.0", true),
      services: {
        hello: "exec: /usr/bin/hello\ntest: /usr/bin/hello ready\n",
        other: "exec: sleep 100001\n",
      },
    });
    await vm.waitFor(READY, 240_000);
    await vm.waitFor(new RegExp(`update: update: manifest ${v1}: up-to-date`), 120_000);
    const ui = await api(vm);
    const before = await ui.service("hello");
    expect(before.state).toBe("Running");

    // hello 2.0.0 exits at once and never passes its readiness test.
    removeBinaryVersion("hello", "1.0.0");
    addBinary("hello", "2.0.0", helloWithTest("2.0.0", false), ["hello"]);
    const v2 = publish();
    const rolling = await vm.waitForMatch(
      /update: unhealthy after the update: hello; rolling back/,
      {
        timeoutMs: 180_000,
      },
    );
    const rolledBack = await vm.waitForMatch(
      new RegExp(`update: update: manifest ${v2}: rolled-back: unhealthy after the update: hello`),
      { timeoutMs: 120_000, from: rolling.index },
    );
    // The old service runs again: back to Running after the rollback's restart.
    await vm.waitFor(/supervisor: hello: \w+ → Running/, 60_000, rolling.index);
    const after = await ui.service("hello");
    expect(after.state).toBe("Running");
    expect(after.pid).not.toBe(before.pid);
    const logs = await ui.logs("hello");
    // 2.0.0 really ran (and failed); what started last is 1.0.0.
    expect(logs).toContain("hello 2.0.0 started, exiting at once");
    expect(logs.filter((l) => / started/.test(l)).at(-1)).toBe("hello 1.0.0 started");
    // The UI shows 1.0.0 current again; 2.0.0 is removed.
    expect(await ui.installedList()).toContainEqual({
      name: "hello",
      current: "1.0.0",
      versions: ["1.0.0"],
    });

    // The next timer tick does not try 2.0.0 again.
    const afterRollback = (rolledBack.index ?? 0) + rolledBack[0].length;
    const nextTick = await vm.waitForMatch(/update: update: manifest \d+: ([\w-]+)/, {
      timeoutMs: 120_000,
      from: afterRollback,
    });
    expect(nextTick[1]).toMatch(/^(unchanged|up-to-date)$/);
    expect(vm.cleanConsole().slice(afterRollback)).not.toMatch(
      /downloading hello|restarting hello/,
    );
    expect(await ui.service("hello")).toMatchObject({ state: "Running", pid: after.pid });
    // Asked directly, the updater says why it holds hello at 1.0.0.
    const check = await ui.check();
    expect(check.changes).toEqual([]);
    expect(check.held).toContainEqual({
      name: "hello",
      version: "1.0.0",
      reason: "2.0.0 failed on this machine before",
    });
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("on an ext4 disk a confirmed self-update switches the boot path: the new PID 1 reports its version, and after a reboot the new version boots", async () => {
    resetVmSection();
    addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"]);
    publish();
    const d = await deployExt4("selfupd-ext4");
    // glibc is on the disk: the boot path holds OLD's exact bytes (no private-loader patch).
    expect(d.report.privateLoader).toBe(false);
    expect(bootPathSha(d.disk as string)).toBe(OLD.sha256);
    {
      await using vm = await bootExt4(d, "update-ext4");
      await vm.waitFor(/hero-init preinit: switched root to \/dev\/vda/, 240_000);
      await vm.waitFor(READY, 240_000);
      await vm.waitFor(/update: update: manifest \d+: up-to-date/, 120_000);
      const ui = await api(vm);
      expect(await ui.version()).toBe(OLD.version);

      addBinary("hero-init", NEXT.version, { copyOf: NEXT.path }, []);
      publish();
      await vm.waitFor(new RegExp(`resumed as hero-init ${esc(NEXT.version)}`), 300_000);
      const confirmed = await vm.waitForMatch(
        new RegExp(`self-update to hero-init ${esc(NEXT.version)} confirmed`),
        { timeoutMs: 120_000 },
      );
      const ui2 = await api(vm);
      expect(await ui2.version()).toBe(NEXT.version);
      expect((await ui2.installed())["hero-init"]).toBe(`${NEXT.version} [${NEXT.version}]`);

      // Reboot (ctrl-alt-del: ordered shutdown, reboot(2)); the same QEMU boots the disk again.
      const rebootAt = (confirmed.index ?? 0) + confirmed[0].length;
      await vm.sendCtrlAltDel();
      await vm.waitFor(/shutdown: rebooting/, 120_000, rebootAt);
      await vm.waitFor(READY, 240_000, rebootAt);
      const ui3 = await api(vm);
      expect(await ui3.version()).toBe(NEXT.version);
      // The updater agrees: what runs is what the manifest lists, nothing to do.
      await vm.waitFor(/update: update: manifest \d+: (unchanged|up-to-date)/, 120_000, rebootAt);
      // It booted as the new version: no re-exec happened after the reboot.
      expect(vm.cleanConsole().slice(rebootAt)).not.toMatch(/resumed as hero-init/);
      expect((await ui3.installed())["hero-init"]).toBe(`${NEXT.version} [${NEXT.version}]`);
      await vm.powerdown();
      expect(await vm.waitExit(120_000)).toBe(0);
    }
    // On the disk, the boot path is now exactly the new build.
    expect(fsckReadOnly(d.disk as string).code).toBe(0);
    expect(bootPathSha(d.disk as string)).toBe(NEXT.sha256);
  });

  test("on an ext4 disk a new PID 1 that dies before confirming leaves the old version to boot", async () => {
    resetVmSection();
    addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"]);
    publish();
    const d = await deployExt4("crash-ext4");
    expect(d.report.privateLoader).toBe(false);
    // hero.fault=confirm-crash: a resumed PID 1 exits right before it would confirm; the
    // kernel panics (panic=-1) and the VM reboots in the same QEMU.
    await using vm = await bootExt4(d, "update-ext4-crash", "hero.fault=confirm-crash");
    await vm.waitFor(READY, 240_000);
    await vm.waitFor(/update: update: manifest \d+: up-to-date/, 120_000);
    const ui = await api(vm);
    expect(await ui.version()).toBe(OLD.version);

    addBinary("hero-init", NEXT.version, { copyOf: NEXT.path }, []);
    publish();
    await vm.waitFor(new RegExp(`resumed as hero-init ${esc(NEXT.version)}`), 300_000);
    // The new PID 1 now waits to confirm and the updater with it: take the new version off
    // the server so the rebooted VM does not simply try it again.
    removeBinary("hero-init");
    publish();
    const crash = await vm.waitForMatch(
      /fault injection: PID 1 exits before confirming the self-update/,
      { timeoutMs: 120_000 },
    );
    await vm.waitFor(/Kernel panic - not syncing: Attempted to kill init/, 60_000, crash.index);
    await vm.waitFor(READY, 240_000, crash.index);
    const ui2 = await api(vm);
    expect(await ui2.version()).toBe(OLD.version);
    expect(vm.cleanConsole()).not.toMatch(/self-update to hero-init .* confirmed/);
    // The staged new version never became current.
    const heroInit = (await ui2.installedList()).find((b) => b.name === "hero-init");
    expect(heroInit?.current ?? null).toBeNull();
    await vm.waitFor(/update: update: manifest \d+: up-to-date/, 120_000, crash.index);
    expect(await ui2.version()).toBe(OLD.version);
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
    // On the disk, the boot path is still exactly the old binary.
    expect(bootPathSha(d.disk as string)).toBe(OLD.sha256);
  });
});
