/**
 * Signed manifest and updates, in QEMU. The host serves a publisher
 * directory with `hero-init serve`; the VM follows it with `[update]`
 * (timer shortened to 5 s). Bumping a `[vm]` binary on the server makes
 * the VM converge on its own: only that binary's service restarts, the old
 * version is removed, the UI shows the new one. Publishing a new hero-init
 * makes PID 1 re-exec itself: every service keeps its pid and its output
 * keeps flowing. A broken hero-init fails its smoke test and changes
 * nothing; a new hero-init that fails while resuming execs back into the
 * old one (hero.fault=resume), services still untouched. A service killed
 * during the hand-off (hero.fault=handoff-exit) is reaped and restarted by
 * the new PID 1.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CpioEntry } from "../../host-injector/cpio/newc.ts";
import { ensureKernel, type Kernel } from "../../host-injector/kernel.ts";
import { formatPublicKey, generateKey, type SecretKey } from "../../lib/minisign.ts";
import { buildManifest, publishSigned } from "../../update/publish.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";
import { buildImage, serviceFiles, testVmToml } from "../vm/image.ts";
import { bootVm, type Vm } from "../vm/qemu.ts";

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

const hello = (v: string) => `#!/bin/sh\necho "hello ${v} started"\nexec sleep 100000\n`;

function addBinary(
  name: string,
  v: string,
  content: string | { copyOf: string },
  services: string[],
) {
  const d = join(pub, "vm", name, v);
  mkdirSync(d, { recursive: true });
  if (typeof content === "string") writeFileSync(join(d, name), content, { mode: 0o755 });
  else copyFileSync(content.copyOf, join(d, name));
  writeFileSync(
    join(pub, "vm", name, "meta.toml"),
    `services = [${services.map((s) => JSON.stringify(s)).join(", ")}]\n`,
  );
}

function removeBinaryVersion(name: string, v: string) {
  rmSync(join(pub, "vm", name, v), { recursive: true, force: true });
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

/** hello 1.0.0 installed the way the injector lays it out. */
const preinstalled: CpioEntry[] = [
  { type: "dir", path: "usr/lib/hero/pkgs", mode: 0o755 },
  { type: "dir", path: "usr/lib/hero/pkgs/hello", mode: 0o755 },
  { type: "dir", path: "usr/lib/hero/pkgs/hello/1.0.0", mode: 0o755 },
  {
    type: "file",
    path: "usr/lib/hero/pkgs/hello/1.0.0/hello",
    mode: 0o755,
    data: enc.encode(hello("1.0.0")),
  },
  { type: "symlink", path: "usr/lib/hero/pkgs/hello/current", target: "1.0.0" },
  { type: "symlink", path: "usr/bin/hello", target: "/usr/lib/hero/pkgs/hello/current/hello" },
];

async function bootUpdatingVm(name: string, append = ""): Promise<Vm> {
  const pubLine = formatPublicKey(key).split("\n")[1];
  const initrd = await buildImage(join(dir, `${name}.cpio`), {
    kernel,
    busybox: true,
    vmToml: testVmToml(`password_hash = ${JSON.stringify(pwHash)}

[update]
manifest = "http://10.0.2.2:${server.port}/bootstrapper.toml"
key = "${pubLine}"
interval = 5
jitter = 0.2
health_seconds = 2
`),
    extra: [
      ...preinstalled,
      ...services({
        hello: "exec: /usr/bin/hello\n",
        other: "exec: sleep 100001\n",
        ticker: `exec: sh -c 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done'\n`,
      }),
    ],
  });
  return bootVm({ kernel, initrd, memMB: 2048, hostfwd: [9999], name, append });
}

/** A logged-in API client for the VM's UI. */
async function api(vm: Vm) {
  const base = `http://127.0.0.1:${vm.ports[9999]}`;
  // Right after a re-exec the UI may not listen yet: retry for a while.
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
  const get = async <T>(path: string): Promise<T> => {
    const r = await fetch(`${base}${path}`, { headers: { cookie } });
    if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${await r.text()}`);
    return (await r.json()) as T;
  };
  return {
    pids: async () =>
      Object.fromEntries(
        (await get<{ name: string; pid: number }[]>("/api/v1/services")).map((s) => [
          s.name,
          s.pid,
        ]),
      ),
    installed: async () =>
      Object.fromEntries(
        (
          await get<{ installed: { name: string; current: string | null; versions: string[] }[] }>(
            "/api/v1/updates",
          )
        ).installed.map((b) => [b.name, `${b.current} [${b.versions.join(",")}]`]),
      ),
    ticks: async () =>
      (await get<{ text: string }[]>("/api/v1/services/ticker/logs"))
        .map((l) => Number(/^tick (\d+)$/.exec(l.text)?.[1]))
        .filter((n) => Number.isFinite(n)),
  };
}

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-upd-"));
  pub = join(dir, "pub");
  mkdirSync(pub);
  key = generateKey();
  pwHash = await Bun.password.hash("update-test", { algorithm: "bcrypt", cost: 4 });
  server = startServer({ dir: pub, hostname: "127.0.0.1", port: 0, log: () => {} });
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("updates in a VM", () => {
  test("a bumped [vm] binary converges on the VM's timer; PID 1 updates itself keeping every pid; a broken hero-init changes nothing", async () => {
    addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"]);
    publish();
    // hero.fault=handoff-exit: the first service (hello) is SIGKILLed right before the re-exec.
    await using vm = await bootUpdatingVm("update", "hero.fault=handoff-exit");
    await vm.waitFor(/hero-init boot: READY/, 240_000);
    await vm.waitFor(/update: update: manifest 1: up-to-date/, 120_000);
    const ui = await api(vm);
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

    // 2. A new hero-init: PID 1 re-execs into it; every service keeps its pid, output keeps flowing.
    addBinary("hero-init", "2.0.0", { copyOf: join(ROOT, "dist/hero-init") }, []);
    publish();
    await vm.waitFor(/resumed as hero-init 2\.0\.0: adopted 3 services/, 300_000);
    await vm.waitFor(/self-update to hero-init 2\.0\.0 confirmed/, 120_000);
    const ui2 = await api(vm);
    // Every service kept its pid, except hello, killed during the hand-off: the new PID 1
    // reaped it as its adopted child and restarted it.
    const afterSelf = await ui2.pids();
    expect(vm.cleanConsole()).toMatch(/hello: \w+ → (Error|Success) \(killed by SIGKILL\)/);
    expect(afterSelf.hello).toBeGreaterThan(1);
    expect(afterSelf.hello).not.toBe(afterBump.hello);
    expect({ ...afterSelf, hello: 0 }).toEqual({ ...afterBump, hello: 0 });
    expect((await ui2.installed())["hero-init"]).toBe("2.0.0 [2.0.0]");
    // The ticker's output arrives through the pipe handed over across execve.
    let ticks: number[] = [];
    for (let i = 0; i < 20 && ticks.length < 3; i++) {
      await Bun.sleep(1000);
      ticks = await ui2.ticks();
    }
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks.at(-1)).toBeGreaterThan(10);

    // 3. A broken hero-init fails its smoke test: nothing changes.
    removeBinaryVersion("hero-init", "2.0.0");
    addBinary("hero-init", "3.0.0", "#!/bin/sh\necho broken >&2\nexit 1\n", []);
    publish();
    await vm.waitFor(/failed its smoke test/, 120_000);
    expect(await ui2.pids()).toEqual(afterSelf);
    expect((await ui2.installed())["hero-init"]).toBe("2.0.0 [2.0.0]");
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("a new hero-init that fails while resuming execs back into the old one; services keep their pids", async () => {
    rmSync(join(pub, "vm"), { recursive: true, force: true });
    addBinary("hello", "1.0.0", hello("1.0.0"), ["hello"]);
    publish();
    await using vm = await bootUpdatingVm("update-fault", "hero.fault=resume");
    await vm.waitFor(/hero-init boot: READY/, 240_000);
    await vm.waitFor(/up-to-date/, 120_000);
    const ui = await api(vm);
    const before = await ui.pids();
    addBinary("hero-init", "2.0.0", { copyOf: join(ROOT, "dist/hero-init") }, []);
    publish();
    await vm.waitFor(/resume failed: .*fault injection: resume/, 300_000);
    await vm.waitFor(/self-update to hero-init 2\.0\.0 rolled back/, 120_000);
    const ui2 = await api(vm);
    expect(await ui2.pids()).toEqual(before);
    // The failed version is gone and nothing was confirmed.
    expect((await ui2.installed())["hero-init"]).toBeUndefined();
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });
});
