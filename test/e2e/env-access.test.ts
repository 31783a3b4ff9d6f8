/**
 * Environment access (docs/environments.md), in QEMU with a real sshd. The
 * debian-systemd template (Debian's openssh-server and sudo) is deployed as
 * an ext4 disk with hero-init as PID 1 (`init = "hero"`: no systemd
 * hand-off) and sshd as a zinit service. The host serves a signed manifest
 * with `hero-init serve`'s server; the VM follows it (`[update]`, 5 s) and
 * applies its environment's access section. The host's OpenSSH client then
 * logs in through a QEMU port forward:
 *
 *  - dev: the dev key gets in, and `sudo -n` works (passwordless);
 *  - removing the key from the manifest converges: the next run takes it
 *    off the machine and the same key is refused, the new one gets in;
 *  - production: the dev key is refused; the ops key gets in but has no
 *    passwordless sudo, only its scoped command;
 *  - a session open with a key that the manifest then removes is ended
 *    (not left running until its next login).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { formatPublicKey, generateKey, type SecretKey } from "../../lib/minisign.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";
import { until } from "../helpers/poll.ts";
import { publishManifest } from "../helpers/publish-manifest.ts";
import { testVmToml } from "../vm/image.ts";
import { bootVm, READY, type Vm } from "../vm/qemu.ts";
import { sshKeyPair, ssh as sshRun } from "../vm/systemd-node.ts";

setDefaultTimeout(900_000);
let kernel: Kernel;
let dir: string;
let pub: string;
let key: SecretKey;
let server: BootstrapServer;
let version = 0;
/** Private key files and their public lines, made by ssh-keygen. */
const keys: Record<string, { file: string; line: string }> = {};

/** sshd as a zinit service: its privilege-separation directory lives in /run (a tmpfs). */
const SSHD = {
  sshd: 'exec: sh -c "mkdir -p -m 0755 /run/sshd && exec /usr/sbin/sshd -D -e"\n',
};

function sshKeygen(name: string) {
  const { keyFile, publicKey } = sshKeyPair(dir, name);
  keys[name] = { file: keyFile, line: publicKey.trim() };
}

/** Writes the access sections and publishes the next signed manifest. */
function publish(access: Record<string, string>) {
  rmSync(join(pub, "access"), { recursive: true, force: true });
  mkdirSync(join(pub, "access"), { recursive: true });
  for (const [env, text] of Object.entries(access))
    writeFileSync(join(pub, "access", `${env}.toml`), text);
  publishManifest(pub, `http://10.0.2.2:${server.port}/`, ++version, key);
}

/** An access section's user table; the keys are the public lines ssh-keygen made. */
function user(name: string, keyNames: string[], extra = ""): string {
  const lines = keyNames.map((k) => {
    const line = keys[k]?.line;
    if (!line) throw new Error(`no key "${k}" generated`);
    return JSON.stringify(line);
  });
  return `[[users]]\nname = "${name}"\nkeys = [${lines.join(", ")}]\n${extra}`;
}

/** One ssh login through the port forward: exit code, stdout, stderr (trimmed). */
async function ssh(vm: Vm, who: string, keyName: string, command: string) {
  const file = keys[keyName]?.file as string;
  const r = await sshRun(vm.ports[22] as number, file, command, { user: who, connectTimeoutS: 60 });
  return { code: r.code, out: r.out.trim(), err: r.err.trim() };
}

/** The first login of `who` with `keyName` that succeeds (access is applied by the update loop). */
function firstLogin(vm: Vm, who: string, keyName: string, command: string) {
  return until(
    `the ${keyName} key to log in as ${who}`,
    async () => {
      const r = await ssh(vm, who, keyName, command);
      return r.code === 0 ? r : undefined;
    },
    180_000,
    2000,
    () => vm.console().slice(-3000),
  );
}

async function boot(name: string, env: string): Promise<Vm> {
  const base = parseToml(testVmToml(), "test vm.toml") as VmConfigInput;
  const vm: VmConfigInput = {
    ...base,
    init: "hero",
    update: {
      manifest: `http://10.0.2.2:${server.port}/bootstrapper.toml`,
      key: formatPublicKey(key).split("\n")[1] as string,
      env: env as "dev",
      interval: 5,
      jitter: 0.2,
    },
  } as VmConfigInput;
  const d = await deployVm({
    template: "debian-systemd",
    format: "ext4",
    out: join(dir, name),
    vm,
    services: SSHD,
    kernel,
  });
  const v = await bootVm({
    kernel: d.kernel,
    initrd: d.initrd,
    append: d.kernelCmdline,
    disks: d.disk ? [{ path: d.disk }] : [],
    hostfwd: [22, 9999],
    memMB: 1024,
    name,
  });
  await v.waitFor(READY, 300_000);
  return v;
}

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-env-access-"));
  pub = join(dir, "pub");
  mkdirSync(pub, { recursive: true });
  key = generateKey();
  server = startServer({ dir: pub, hostname: "127.0.0.1", port: 0 });
  for (const k of ["dev1", "dev2", "ops"]) sshKeygen(k);
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const OPS = () => user("ops", ["ops"], 'sudo = "scoped"\nsudo_commands = ["/usr/bin/id -un"]\n');

describe("environment access with a real sshd", () => {
  test("dev: the dev key logs in with passwordless sudo; removing the key converges", async () => {
    publish({ dev: user("dev", ["dev1"], 'shell = "/bin/bash"\n'), production: OPS() });
    await using vm = await boot("env-dev", "dev");
    await vm.waitFor(/access \(dev\): added user dev/, 180_000);
    const first = await firstLogin(vm, "dev", "dev1", "id -un; sudo -n id -u");
    expect(first.out).toBe("dev\n0");
    // The machine's files, seen through the login.
    const ls = await ssh(
      vm,
      "dev",
      "dev1",
      "stat -c '%a %U' ~/.ssh/authorized_keys; sudo -n cat /etc/sudoers.d/hero-init-dev",
    );
    expect(ls.out).toContain("600 dev");
    expect(ls.out).toContain("dev ALL=(root) NOPASSWD: ALL");
    // Debian's own visudo accepts the whole sudoers configuration with the drop-in.
    const visudo = await ssh(vm, "dev", "dev1", "sudo -n /usr/sbin/visudo -c");
    expect(visudo.code).toBe(0);
    expect(visudo.out).toContain("/etc/sudoers.d/hero-init-dev: parsed OK");

    // A session open with the key about to be revoked: it must end, not live on.
    let closed: { code: number | null } | null = null;
    void sshRun(vm.ports[22] as number, keys.dev1?.file as string, "exec sleep 900", {
      user: "dev",
      timeoutMs: 600_000,
    }).then((r) => {
      closed = r;
    });
    await until(
      "the open session's sleep",
      async () =>
        (
          await ssh(
            vm,
            "dev",
            "dev1",
            "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ' | grep -q 'sleep 9[0]0'",
          )
        ).code === 0,
      60_000,
      1000,
    );

    publish({ dev: user("dev", ["dev2"], 'shell = "/bin/bash"\n'), production: OPS() });
    await until(
      "the revoked key's open session to end",
      () => closed ?? undefined,
      180_000,
      1000,
      () => vm.console().slice(-3000),
    );
    expect(closed).not.toMatchObject({ code: 0 });
    expect(vm.console()).toMatch(
      /access: ended the sessions of dev \(uid \d+\): [1-9]\d* processes/,
    );
    await until(
      "the removed key to be refused",
      async () => {
        const r = await ssh(vm, "dev", "dev1", "true");
        return r.code === 255 && /Permission denied/.test(r.err) ? r : undefined;
      },
      180_000,
      2000,
      () => vm.console().slice(-3000),
    );
    const second = await ssh(vm, "dev", "dev2", "sudo -n id -u");
    expect(second).toMatchObject({ code: 0, out: "0" });
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("production: the dev key is refused; ops logs in without passwordless sudo", async () => {
    publish({ dev: user("dev", ["dev1"]), production: OPS() });
    await using vm = await boot("env-production", "production");
    await vm.waitFor(/access \(production\): added user ops/, 180_000);
    const ops = await firstLogin(vm, "ops", "ops", "id -un; sudo -n id -un");
    expect(ops.out).toBe("ops\nroot");
    const all = await ssh(vm, "ops", "ops", "sudo -n true");
    expect(all.code).not.toBe(0);
    expect(all.err).toMatch(/password is required|not allowed|may not run/);
    for (const who of ["dev", "ops", "root"]) {
      const r = await ssh(vm, who, "dev1", "true");
      expect(r.code).toBe(255);
      expect(r.err).toContain("Permission denied");
    }
    await vm.powerdown();
    expect(await vm.waitExit(120_000)).toBe(0);
  });
});
