/**
 * Guest agent and job VMs, in QEMU. From the host, through the forwarded
 * agent port: exec returns 0, 1, 127 and 128+signal and streams 50 MB
 * intact; cp keeps bytes, mode and mtime; a wrong or missing token and a
 * client outside the allowed addresses are refused; a graceful shutdown
 * gives services their stop signal. A job VM downloads its runner (a shell
 * script served by `hero-init serve`), the secret is gone from disk while
 * the job runs, and the host reads the job's exit code with wait-exit; an
 * expired token ends the VM with code 1 without fetching anything. The
 * guest's vsock listener is reached from inside the VM (loopback transport,
 * CID 1): this machine has no vhost-vsock for a host-side test.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AgentClient } from "../../host/agent-client.ts";
import type { CpioEntry } from "../../host/cpio/newc.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import type { HeroError } from "../../lib/errors.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";
import { expectInOrder } from "../order.ts";
import { buildImage, TEST_MODULES, testVmToml } from "../vm/image.ts";
import { bootVm, type Vm } from "../vm/qemu.ts";

setDefaultTimeout(600_000);
const TOKEN = "a".repeat(8) + createHash("sha256").update(String(process.pid)).digest("hex");
const enc = new TextEncoder();
/** Busybox applets beyond the test image's own list. */
const APPLETS = ["head", "dd", "sha256sum", "test", "wget", "rm", "wc"];
let kernel: Kernel;
let dir: string;
let server: BootstrapServer;
const access: string[] = [];

const file = (path: string, data: string, mode = 0o644): CpioEntry => ({
  type: "file",
  path,
  mode,
  data: enc.encode(data),
});

async function agentVm(
  name: string,
  vmExtra: string,
  extra: CpioEntry[] = [],
  vsock = false,
): Promise<Vm> {
  const toml = (t: string) =>
    vsock
      ? t.replace(
          'modules = ["virtio_pci", "virtio_net"]',
          'modules = ["virtio_pci", "virtio_net", "vsock_loopback"]',
        )
      : t;
  const initrd = await buildImage(join(dir, `${name}.cpio`), {
    kernel,
    busybox: true,
    modules: vsock ? [...TEST_MODULES, "vsock_loopback"] : undefined,
    vmToml: toml(
      testVmToml(`
[agent]
listen = ["0.0.0.0"]
allow = ["10.0.2.2/32"]
${vmExtra}`),
    ),
    extra: [
      ...APPLETS.map(
        (a) => ({ type: "symlink", path: `bin/${a}`, target: "busybox" }) as CpioEntry,
      ),
      file("etc/hero-init/agent.token", `${TOKEN}\n`, 0o600),
      ...extra,
    ],
  });
  return bootVm({ kernel, initrd, hostfwd: [9998], name });
}

const client = (vm: Vm, token = TOKEN) =>
  new AgentClient({ url: `http://127.0.0.1:${vm.ports[9998]}`, token });

async function run(c: AgentClient, argv: string[]) {
  const out: Uint8Array[] = [];
  const exit = await c.exec({ argv }, { stdout: (b) => void out.push(b.slice()) });
  return { exit, out: Buffer.concat(out).toString() };
}

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-agent-"));
  const pub = join(dir, "pub");
  Bun.spawnSync(["mkdir", "-p", pub]);
  writeFileSync(
    join(pub, "runner.sh"),
    `#!/bin/sh
echo "runner: uid $(id -u) gid $(id -g); secret has $(wc -c < "$HERO_JOB_SECRET_FILE") bytes"
sleep 1
if test -e "$HERO_JOB_SECRET_FILE"; then echo SECRET-STILL-IN-RUN; else echo SECRET-GONE-FROM-RUN; fi
if test -e /etc/hero-init/job.secret; then echo SECRET-STILL-ON-ROOTFS; else echo SECRET-GONE-FROM-ROOTFS; fi
sleep 8
exit 3
`,
  );
  server = startServer({ dir: pub, hostname: "127.0.0.1", port: 0, log: (l) => access.push(l) });
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("guest agent in a VM", () => {
  test("exec codes and 50 MB of output, cp keeps mode and mtime, tokens and sources are checked, the vsock listener answers, graceful shutdown", async () => {
    await using vm = await agentVm(
      "agent",
      "",
      [
        { type: "dir", path: "etc/zinit", mode: 0o755 },
        file(
          "etc/zinit/graceful.yaml",
          `exec: sh -c 'trap "echo GRACEFUL-GOT-TERM; sleep 1; echo GRACEFUL-DONE; exit 0" TERM; echo GRACEFUL-ARMED; while true; do sleep 1; done'\nlog: stdout\nshutdown_timeout: 20\n`,
        ),
      ],
      true,
    );
    await vm.waitFor(/agent: listening on 0\.0\.0\.0:9998/, 240_000);
    const c = client(vm);

    expect((await run(c, ["sh", "-c", "exit 0"])).exit.code).toBe(0);
    expect((await run(c, ["sh", "-c", "echo out; exit 1"])).exit.code).toBe(1);
    const nf = await run(c, ["/no/such/command"]);
    expect(nf.exit.code).toBe(127);
    const killed = await run(c, ["sh", "-c", "kill -9 $$"]);
    expect(killed.exit).toMatchObject({ code: 137, signal: "SIGKILL" });

    // 50 MB through the stream, compared with the guest's own sha256 of the same bytes.
    await run(c, ["sh", "-c", "dd if=/dev/urandom of=/tmp/big bs=1048576 count=50 2>/dev/null"]);
    const guestSha = (await run(c, ["sha256sum", "/tmp/big"])).out.split(" ")[0];
    const h = createHash("sha256");
    let n = 0;
    const big = await c.exec(
      { argv: ["cat", "/tmp/big"] },
      {
        stdout: (b) => {
          h.update(b);
          n += b.length;
        },
      },
    );
    expect(big.code).toBe(0);
    expect(n).toBe(50 * 1048576);
    expect(h.digest("hex")).toBe(guestSha as string);

    // cp round trip keeps bytes, mode and mtime.
    const local = join(dir, "payload.bin");
    writeFileSync(local, "payload \u00e9\n".repeat(1000));
    const mtime = 1_700_000_000;
    await c.putFile("/tmp/payload.bin", Bun.file(local), { mode: 0o640, mtime });
    const back = await c.getFile("/tmp/payload.bin");
    expect(back.mode & 0o7777).toBe(0o640);
    expect(Math.floor(back.mtime)).toBe(mtime);
    expect(await new Response(back.body).text()).toBe("payload \u00e9\n".repeat(1000));

    // Wrong or missing token: 401. A client outside loopback/mycelium/allow (the VM's own eth0 address): 403.
    const wrong = await client(vm, "wrong-token-wrong-token")
      .status()
      .then(
        () => null,
        (err) => err as HeroError,
      );
    expect(wrong?.detail.status).toBe(401);
    const missing = await fetch(`http://127.0.0.1:${vm.ports[9998]}/agent/v1/status`);
    expect(missing.status).toBe(401);
    const fromEth0 = await run(c, [
      "sh",
      "-c",
      "wget -q -O - --header 'Authorization: Bearer x' http://10.0.2.15:9998/agent/v1/status 2>&1; echo rc=$?",
    ]);
    expect(fromEth0.out).toMatch(/403/);

    // vsock: the guest's AF_VSOCK listener, reached through the loopback transport (CID 1)
    // by hero-init's own client inside the VM; this machine has no vhost-vsock for the host side.
    const viaVsock = await run(c, [
      "hero-init",
      "agent",
      "--vsock-cid",
      "1:9998",
      "--token-file",
      "/etc/hero-init/agent.token",
      "exec",
      "--",
      "sh",
      "-c",
      "echo via-vsock; exit 7",
    ]);
    expect(viaVsock.out).toBe("via-vsock\n");
    expect(viaVsock.exit.code).toBe(7);
    const badToken = await run(c, [
      "sh",
      "-c",
      "hero-init agent --vsock-cid 1:9998 --token wrong-token-wrong-token status; echo rc=$?",
    ]);
    expect(badToken.out).toMatch(/rc=255/);

    // Graceful shutdown: the service gets SIGTERM and finishes before power-off. It must be
    // running with its trap set first (services start after READY, and this test waited only
    // for the agent).
    await vm.waitFor(/GRACEFUL-ARMED/, 60_000);
    await c.shutdown("poweroff");
    await vm.waitFor(/GRACEFUL-DONE/, 120_000);
    expect(await vm.waitExit(120_000)).toBe(0);
    expectInOrder(vm.cleanConsole(), "GRACEFUL-GOT-TERM", "GRACEFUL-DONE", "reboot: Power down");
  });

  test("a job VM runs its runner, the secret is gone from disk during the job, the host reads the exit code", async () => {
    const runner = await Bun.file(join(dir, "pub/runner.sh")).bytes();
    const sha = createHash("sha256").update(runner).digest("hex");
    await using vm = await agentVm(
      "job",
      `
[job]
secret_file = "/etc/hero-init/job.secret"
expires = ${new Date(Date.now() + 3600_000).toISOString()}
uid = 1000
gid = 1000

[job.runner]
url = "http://10.0.2.2:${server.port}/runner.sh"
sha256 = "${sha}"
size = ${runner.length}
`,
      [file("etc/hero-init/job.secret", "short-lived-token-123", 0o600)],
    );
    await vm.waitFor(/agent: listening on 0\.0\.0\.0:9998/, 240_000);
    const r = await client(vm).waitExit(120_000);
    expect(r).toEqual({ code: 4, message: "job exited 3" });
    await vm.waitFor(/HERO-EXIT code=4 message="job exited 3"/, 60_000);
    expect(await vm.waitExit(120_000)).toBe(0);
    const con = vm.cleanConsole();
    // The job runs as its own uid and can read the secret made for it (0600, owned by that uid).
    expect(con).toContain("runner: uid 1000 gid 1000; secret has 21 bytes");
    expect(con).toContain("SECRET-GONE-FROM-RUN");
    expect(con).toContain("SECRET-GONE-FROM-ROOTFS");
    // After the job: the runner is removed before the power-off.
    expect(con).toMatch(/job: \S+Z cleanup: removed \/var\/lib\/hero-job\/runner/);
  });

  test("a graceful shutdown through the agent gives the job its stop signal and waits for it", async () => {
    const script = `#!/bin/sh
trap 'echo JOB-GOT-TERM; sleep 2; echo JOB-CLEANED-UP; exit 0' TERM
echo JOB-RUNNING
while true; do sleep 1; done
`;
    writeFileSync(join(dir, "pub/trap.sh"), script);
    const sha = createHash("sha256").update(script).digest("hex");
    await using vm = await agentVm(
      "job-stop",
      `
[job]
stop_timeout = 20

[job.runner]
url = "http://10.0.2.2:${server.port}/trap.sh"
sha256 = "${sha}"
size = ${Buffer.byteLength(script)}
`,
    );
    await vm.waitFor(/JOB-RUNNING/, 240_000);
    await client(vm).shutdown("poweroff");
    await vm.waitFor(/JOB-CLEANED-UP/, 60_000);
    expect(await vm.waitExit(120_000)).toBe(0);
    const con = vm.cleanConsole();
    // The job finished its cleanup before the machine went down.
    expectInOrder(con, "JOB-GOT-TERM", "JOB-CLEANED-UP", "reboot: Power down");
  });

  test("a runner that fails its sha256 ends the job VM with code 2, before anything runs", async () => {
    const runner = await Bun.file(join(dir, "pub/runner.sh")).bytes();
    await using vm = await agentVm(
      "job-badsha",
      `
[job]

[job.runner]
url = "http://10.0.2.2:${server.port}/runner.sh"
sha256 = "${"ab".repeat(32)}"
size = ${runner.length}
`,
    );
    const line = await vm.waitFor(/HERO-EXIT code=\d+ message="[^"]*"/, 240_000);
    expect(line).toMatch(/^HERO-EXIT code=2 /);
    expect(vm.cleanConsole()).not.toContain("runner: uid");
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("a job command that cannot run ends the job VM with code 3", async () => {
    await using vm = await agentVm(
      "job-nocmd",
      `\n[job]\ncommand = ["/no/such/runner", "--flag"]\n`,
    );
    const line = await vm.waitFor(/HERO-EXIT code=\d+ message="[^"]*"/, 240_000);
    expect(line).toBe('HERO-EXIT code=3 message="job command could not run (exit 127: not found)"');
    expect(await vm.waitExit(120_000)).toBe(0);
  });

  test("an expired token ends the job VM with code 1 and fetches nothing", async () => {
    access.length = 0;
    await using vm = await agentVm(
      "job-expired",
      `
[job]
expires = 2020-01-01T00:00:00Z

[job.runner]
url = "http://10.0.2.2:${server.port}/runner.sh"
sha256 = "${"0".repeat(64)}"
size = 10
`,
    );
    await vm.waitFor(
      /HERO-EXIT code=1 message="the job's token expired at 2020-01-01T00:00:00.000Z/,
      240_000,
    );
    expect(await vm.waitExit(120_000)).toBe(0);
    expect(access.filter((l) => l.includes("runner.sh"))).toEqual([]);
  });
});
