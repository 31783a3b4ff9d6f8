/**
 * mycelium issue, in QEMU: the VM runs the mycelium stand-in (test/mycelium-standin)
 * as a supervised service generated from vm.toml; its TUN carries the address
 * the injector predicts from the key; from the host — over a tap device in a
 * network namespace that routes 400::/7 to the VM, standing in for the
 * overlay — an HTTP client reaches http://[address]:9999 while a client from
 * a non-allowed address is refused. A killed mycelium is restarted and the
 * UI answers on the address again; a reboot keeps the address.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CpioEntry } from "../../host/cpio/newc.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { addressOfKey, generateKey } from "../../lib/mycelium.ts";
import { buildImage } from "../vm/image.ts";
import { bootVm } from "../vm/qemu.ts";

setDefaultTimeout(600_000);
const NS = `hero-myc-${process.pid}`;
const TAP = "tapmyc0";
let kernel: Kernel;
let dir: string;
let initrd: string;
let predicted: string;

function sh(cmd: string): { code: number; out: string } {
  const p = Bun.spawnSync(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, out: p.stdout.toString() + p.stderr.toString() };
}

/** HTTP GET from inside the namespace, from a chosen source address. */
function curlFrom(source: string, url: string): { status: number; body: string } {
  const r = sh(
    `ip netns exec ${NS} curl -s -g -m 5 --interface ${source} -w '\\n%{http_code}' '${url}'`,
  );
  const lines = r.out.trimEnd().split("\n");
  return { status: Number(lines.at(-1)), body: lines.slice(0, -1).join("\n") };
}

const enc = new TextEncoder();

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-myc-"));
  for (const c of [
    `ip netns add ${NS}`,
    `ip -n ${NS} link set lo up`,
    `ip -n ${NS} tuntap add dev ${TAP} mode tap`,
    `ip -n ${NS} addr add 2001:db8:1::1/64 dev ${TAP} nodad`,
    `ip -n ${NS} addr add 2001:db8:1::99/64 dev ${TAP} nodad`,
    `ip -n ${NS} link set ${TAP} up`,
    `ip -n ${NS} -6 route add 400::/7 via 2001:db8:1::2 dev ${TAP}`,
  ]) {
    const r = sh(c);
    if (r.code !== 0) throw new Error(`${c}: ${r.out}`);
  }
  const bundle = join(dir, "standin.js");
  const b = sh(
    `node_modules/.bin/bun build --target=bun ${join(import.meta.dir, "../mycelium-standin/standin.ts")} --outfile ${bundle}`,
  );
  if (b.code !== 0) throw new Error(b.out);
  const key = generateKey();
  predicted = addressOfKey(key);
  const vmToml = `hostname = "myc"
modules = ["virtio_pci", "virtio_net"]

[network]
dns = ["10.0.2.3"]

[[network.interfaces]]
name = "eth0"
address = "10.0.2.15/24"
gateway = "10.0.2.2"

[[network.interfaces]]
name = "eth1"
address6 = "2001:db8:1::2/64"

[ui]
allow = ["2001:db8:1::1/128"]

[mycelium]
peers = ["tcp://192.0.2.10:9651"]
`;
  const extra: CpioEntry[] = [
    { type: "dir", path: "var", mode: 0o755 },
    { type: "dir", path: "var/lib", mode: 0o755 },
    { type: "dir", path: "var/lib/mycelium", mode: 0o700 },
    { type: "file", path: "var/lib/mycelium/key.bin", mode: 0o600, data: key },
    {
      type: "file",
      path: "usr/lib/mycelium-standin.js",
      mode: 0o644,
      data: new Uint8Array(readFileSync(bundle)),
    },
    // The stand-in runs on hero-init's own runtime; hero-init itself only sees /usr/bin/mycelium.
    {
      type: "file",
      path: "usr/bin/mycelium",
      mode: 0o755,
      data: enc.encode(
        '#!/bin/sh\nBUN_BE_BUN=1 exec /usr/lib/hero/hero-init /usr/lib/mycelium-standin.js "$@"\n',
      ),
    },
    { type: "dir", path: "etc/zinit", mode: 0o755 },
    // After the address is up, kill mycelium once (the host has no other hands in the guest yet).
    {
      type: "file",
      path: "etc/zinit/chaos.yaml",
      mode: 0o644,
      // …and right after, asks the UI on loopback, which must still answer while mycelium is down.
      data: enc.encode(
        'exec: sh -c "sleep 25; zinit kill mycelium SIGKILL; wget -q -O - http://127.0.0.1:9999/health; echo"\noneshot: true\nlog: stdout\n',
      ),
    },
    // Peers at run time through the control socket and mycelium's admin API.
    {
      type: "file",
      path: "etc/zinit/peers.yaml",
      mode: 0o644,
      data: enc.encode(
        'exec: sh -c "sleep 12; hero-init mycelium add-peer tcp://192.0.2.20:9651; hero-init mycelium add-peer udp://bad:1; hero-init mycelium remove-peer tcp://192.0.2.10:9651; hero-init mycelium peers; hero-init mycelium status"\noneshot: true\nlog: stdout\nafter: [mycelium]\n',
      ),
    },
  ];
  initrd = await buildImage(join(dir, "myc.cpio"), {
    kernel,
    busybox: true,
    vmToml,
    extra,
    modules: ["virtio_pci", "virtio_net", "button", "evdev", "tun"],
  });
});

afterAll(() => {
  sh(`ip netns del ${NS}`);
  rmSync(dir, { recursive: true, force: true });
});

async function boot(name: string) {
  return bootVm({
    kernel,
    initrd,
    netns: NS,
    name,
    extraArgs: [
      "-netdev",
      `tap,id=n1,ifname=${TAP},script=no,downscript=no`,
      "-device",
      "virtio-net-pci,netdev=n1,romfile=",
    ],
  });
}

describe("mycelium", () => {
  test("the TUN gets the predicted address; the UI answers on it, only for allowed clients; a killed mycelium comes back", async () => {
    await using vm = await boot("mycelium");
    await vm.waitFor(/hero-init boot: READY/, 180_000);
    const line = await vm.waitFor(/mycelium: address \S+ on mycelium/, 120_000);
    expect(line).toBe(`mycelium: address ${predicted} on mycelium`);
    expect(vm.console()).toContain("network: eth1 (no address) 2001:db8:1::2/64 up");
    await vm.waitFor(`ui: listening on [${predicted}]:9999`, 30_000);
    const ok = curlFrom("2001:db8:1::1", `http://[${predicted}]:9999/health`);
    expect(ok.status).toBe(200);
    expect(JSON.parse(ok.body)).toMatchObject({
      hostname: "myc",
      mycelium: { state: "up", address: predicted },
    });
    const refused = curlFrom("2001:db8:1::99", `http://[${predicted}]:9999/health`);
    expect(refused.status).toBe(403);
    expect(refused.body).toContain("2001:db8:1::99");
    // hero-init mycelium add-peer / remove-peer / peers / status, run by a service in the guest.
    await vm.waitFor(`hero-init peers: address: ${predicted}`, 60_000);
    const out = vm.console();
    expect(out).toContain("hero-init peers: tcp://192.0.2.20:9651 static connecting");
    expect(out).not.toContain("hero-init peers: tcp://192.0.2.10:9651 static");
    expect(out).toContain('hero-init peers: invalid peer URI "udp://bad:1"');
    expect(out).toContain("hero-init peers: state: up");
    // The chaos service kills mycelium; the supervisor restarts it and the UI answers on the address again.
    await vm.waitFor(/mycelium: Running → Error \(killed by SIGKILL\)/, 60_000);
    await vm.waitFor(/hero-init chaos: \{"status":"ok"/, 30_000);
    await vm.waitFor(
      /mycelium: Running → Error \(killed by SIGKILL\)[\s\S]*mycelium: Spawned → Running/,
      60_000,
    );
    let back = { status: 0, body: "" };
    for (let i = 0; i < 60 && back.status !== 200; i++) {
      back = curlFrom("2001:db8:1::1", `http://[${predicted}]:9999/health`);
      if (back.status !== 200) await Bun.sleep(1000);
    }
    expect(back.status).toBe(200);
    await vm.powerdown();
    expect(await vm.waitExit(90_000)).toBe(0);
  });

  test("mycelium missing: the VM still boots, the UI serves loopback, status says why", async () => {
    const missing = await buildImage(join(dir, "missing.cpio"), {
      kernel,
      busybox: true,
      vmToml: `hostname = "nomyc"\nmodules = ["virtio_pci", "virtio_net"]\n[mycelium]\n`,
      extra: [
        { type: "dir", path: "etc/zinit", mode: 0o755 },
        {
          type: "file",
          path: "etc/zinit/probe.yaml",
          mode: 0o644,
          data: enc.encode(
            'exec: sh -c "sleep 4; hero-init mycelium status; zinit status mycelium; echo; wget -q -O - http://127.0.0.1:9999/health"\noneshot: true\nlog: stdout\n',
          ),
        },
      ],
      modules: ["virtio_pci", "virtio_net", "button", "evdev", "tun"],
    });
    await using vm = await bootVm({ kernel, initrd: missing, name: "mycelium-missing" });
    await vm.waitFor(/hero-init boot: READY/, 180_000);
    await vm.waitFor(/hero-init probe: \{"status":"ok"/, 60_000);
    const out = vm.console();
    expect(out).toContain("hero-init probe: state: waiting");
    expect(out).toMatch(
      /hero-init probe: reason: .*(Unable to connect|ECONNREFUSED|refused|fetch)/i,
    );
    // zinit's YAML emitter quotes it (comma and parentheses).
    expect(out).toMatch(/hero-init probe: state: "Error\(Exited\(Pid\(\d+\), 127\)\)"/);
    expect(out).toContain(
      "supervisor: mycelium: Running → Error (exit status 127: hero-exec: cannot exec /usr/bin/mycelium: No such file or directory)",
    );
    // It keeps being retried with backoff: a binary that arrives later (an update) is picked up.
    expect(
      out.match(/supervisor: mycelium: Blocked → Spawned/g)?.length ?? 0,
    ).toBeGreaterThanOrEqual(2);
    await vm.powerdown();
    expect(await vm.waitExit(90_000)).toBe(0);
  });

  test("a reboot keeps the same address (the key file persists in the image)", async () => {
    await using vm = await boot("mycelium-reboot");
    const line = await vm.waitFor(/mycelium: address \S+ on mycelium/, 240_000);
    expect(line).toBe(`mycelium: address ${predicted} on mycelium`);
    await vm.powerdown();
    await vm.waitExit(90_000);
  });
});
