/**
 * Real mycelium overlay for the VM tests: a network namespace the test
 * creates, tap devices in it (one per VM: QEMU runs in the namespace and
 * opens them by name), and a host-side node of the real `mycelium`
 * (test/vendor.ts) in it, whose overlay address the test's HTTP clients
 * use. Everything the test process does in the namespace goes through
 * `ip netns exec` (curl, hero-init's own agent client). Every process started
 * here gets SIGKILL when the test process dies (setpriv --pdeathsig), and
 * the namespace is deleted on close and, as a last resort, at exit.
 */

import { closeSync, copyFileSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import type { Kernel } from "../../host/kernel.ts";
import { generateKey as generateSigningKey, verifyMessage } from "../../lib/minisign.ts";
import { addressOfKey, generateKey } from "../../lib/mycelium.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { buildManifest, publishSigned } from "../../update/publish.ts";
import { startServer } from "../../update/serve.ts";
import { vendorBinary } from "../vendor.ts";

const ROOT = join(import.meta.dir, "../..");
const SETPRIV = Bun.which("setpriv");
const live = new Set<string>();
process.on("exit", () => {
  for (const ns of live) Bun.spawnSync(["ip", "netns", "del", ns]);
});

/** A command's outcome. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(argv: string[], timeoutMs = 60_000): Run {
  const p = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

function must(argv: string[]): string {
  const r = run(argv);
  if (r.code !== 0) throw new Error(`${argv.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** An HTTP answer as curl saw it; status 0 when none came. */
export interface HttpAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Pure: curl's `-D - … -w '\n%{http_code}'` output → status, last header block and body. */
export function parseCurl(out: string): HttpAnswer {
  const cut = out.lastIndexOf("\n");
  const status = Number(out.slice(cut + 1)) || 0;
  let rest = out.slice(0, cut);
  const headers: Record<string, string> = {};
  // Each response's header block ends with an empty line; a 100 Continue adds one more.
  while (/^HTTP\/[\d.]+ \d+/.test(rest)) {
    const end = rest.indexOf("\r\n\r\n");
    if (end < 0) break;
    for (const line of rest.slice(0, end).split("\r\n").slice(1)) {
      const i = line.indexOf(":");
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    rest = rest.slice(end + 4);
  }
  return { status, headers, body: rest };
}

/** A network namespace made by the test. */
export class Netns {
  private constructor(readonly name: string) {}

  /** Creates the namespace with its loopback up. */
  static create(name: string): Netns {
    must(["ip", "netns", "add", name]);
    live.add(name);
    must(["ip", "-n", name, "link", "set", "lo", "up"]);
    return new Netns(name);
  }

  /** A tap device for one VM with the namespace's end of the link (addresses /64, no DAD). */
  addTap(tap: string, addresses: string[]): void {
    must(["ip", "-n", this.name, "tuntap", "add", "dev", tap, "mode", "tap"]);
    for (const a of addresses)
      must(["ip", "-n", this.name, "addr", "add", `${a}/64`, "dev", tap, "nodad"]);
    must(["ip", "-n", this.name, "link", "set", tap, "up"]);
  }

  /** `ip -n NS …` (routes, rules). */
  ip(...args: string[]): string {
    return must(["ip", "-n", this.name, ...args]);
  }

  /** Runs argv inside the namespace. */
  exec(argv: string[], timeoutMs = 120_000): Run {
    return run(["ip", "netns", "exec", this.name, ...argv], timeoutMs);
  }

  /** One HTTP request with curl from inside the namespace (from `source` when given). */
  http(
    url: string,
    o: {
      source?: string;
      method?: string;
      body?: string;
      headers?: string[];
      timeoutS?: number;
    } = {},
  ): HttpAnswer {
    const argv = ["curl", "-s", "-g", "-D", "-", "-m", String(o.timeoutS ?? 10)];
    if (o.source) argv.push("--interface", o.source);
    if (o.method) argv.push("-X", o.method);
    for (const h of o.headers ?? []) argv.push("-H", h);
    if (o.body !== undefined) argv.push("--data-binary", o.body);
    argv.push("-w", "\n%{http_code}", url);
    return parseCurl(this.exec(argv, ((o.timeoutS ?? 10) + 10) * 1000).stdout);
  }

  /**
   * `hero-init agent COMMAND… --addr ADDR --token TOKEN [-- ARGV…]` (this
   * tree's dist/hero-init: the operator's client) from inside the namespace,
   * e.g. to a QEMU port forward on the namespace's loopback.
   */
  agent(addr: string, token: string, command: string[], argv?: string[], timeoutMs = 120_000): Run {
    const tail = argv ? ["--", ...argv] : [];
    return this.exec(
      [
        join(ROOT, "dist/hero-init"),
        "agent",
        ...command,
        "--addr",
        addr,
        "--token",
        token,
        ...tail,
      ],
      timeoutMs,
    );
  }

  /** Deletes the namespace (its taps go with it). */
  close(): void {
    run(["ip", "netns", "del", this.name]);
    live.delete(this.name);
  }
}

/** One entry of mycelium's GET /api/v1/admin/peers (0.7.10). */
export interface PeerStats {
  endpoint: { proto: string; addr?: { socket?: string }; socketAddr?: string };
  type: string;
  connectionState: string;
}

/** The socket address of a peer entry ("[2001:db8::2]:40000"). */
export const peerSocket = (p: PeerStats) => p.endpoint.addr?.socket ?? p.endpoint.socketAddr ?? "";

/** A real mycelium node running in a namespace. */
export class MyceliumNode {
  private constructor(
    readonly ns: Netns,
    readonly address: string,
    readonly logFile: string,
    private readonly proc: ReturnType<typeof Bun.spawn>,
    private readonly apiAddr: string,
  ) {}

  /**
   * Starts `mycelium` in `ns` with a fresh key (its overlay address is
   * known before it starts) on TUN `tun`, listening on TCP 9651 on every
   * address, and waits until its admin API reports that address.
   */
  static async start(ns: Netns, dir: string, tun = "myc-host"): Promise<MyceliumNode> {
    const key = generateKey();
    const keyFile = join(dir, `${tun}.key`);
    writeFileSync(keyFile, key, { mode: 0o600 });
    const address = addressOfKey(key);
    const logFile = join(dir, `${tun}.log`);
    const fd = openSync(logFile, "w");
    const apiAddr = "127.0.0.1:8989";
    const cmd = [
      "ip",
      "netns",
      "exec",
      ns.name,
      vendorBinary("mycelium"),
      "-k",
      keyFile,
      "--tun-name",
      tun,
      "--api-addr",
      apiAddr,
      "--jsonrpc-addr",
      "127.0.0.1:8990",
      "--disable-peer-discovery",
    ];
    if (SETPRIV) cmd.unshift(SETPRIV, "--pdeathsig", "KILL");
    const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: fd, stderr: fd });
    closeSync(fd);
    const node = new MyceliumNode(ns, address, logFile, proc, apiAddr);
    const end = Date.now() + 60_000;
    for (;;) {
      const a = ns.http(`http://${apiAddr}/api/v1/admin`, { timeoutS: 2 });
      if (a.status === 200 && (JSON.parse(a.body) as { nodeIp?: string }).nodeIp === address)
        return node;
      if (proc.exitCode !== null || Date.now() > end) {
        await node.stop();
        throw new Error(`the host's mycelium did not come up (${a.status}):\n${node.log()}`);
      }
      await Bun.sleep(200);
    }
  }

  /** Its log without colours (it writes ANSI escapes even to a file). */
  log(): string {
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI escapes.
    return readFileSync(this.logFile, "utf8").replace(/\x1b\[[0-9;]*m/g, "");
  }

  /** Its peers, as its admin API lists them. */
  peers(): PeerStats[] {
    const a = this.ns.http(`http://${this.apiAddr}/api/v1/admin/peers`, { timeoutS: 5 });
    if (a.status !== 200) throw new Error(`host node's admin API: HTTP ${a.status} ${a.body}`);
    return JSON.parse(a.body) as PeerStats[];
  }

  /** Whether a peer connected from `underlay` (an address of a VM's link) is alive. */
  hasAlivePeerFrom(underlay: string): boolean {
    return this.peers().some(
      (p) => peerSocket(p).startsWith(`[${underlay}]:`) && p.connectionState === "alive",
    );
  }

  /** Ends the node (SIGTERM, SIGKILL after 3 s). */
  async stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return;
    this.proc.kill("SIGTERM");
    const gone = await Promise.race([this.proc.exited.then(() => true), Bun.sleep(3000)]);
    if (!gone) this.proc.kill("SIGKILL");
    await this.proc.exited;
  }
}

/** The version the manifest publishes (test/vendor.ts builds 0.7.10). */
export const MYCELIUM_VERSION = "0.7.10";

/**
 * deployVm as production does it: the real mycelium is a `[vm]` binary of a
 * signed bootstrapper.toml (publisher layout, `hero-init serve`, minisign
 * signature checked here before use), installed by the injector into the
 * minimal template (busybox, no glibc) as an initramfs.
 */
export async function deployWithMycelium(
  dir: string,
  name: string,
  vm: VmConfigInput,
  kernel: Kernel,
): Promise<Deployment> {
  const pub = join(dir, `pub-${name}`);
  const bin = join(pub, "vm/mycelium", MYCELIUM_VERSION);
  mkdirSync(bin, { recursive: true });
  copyFileSync(vendorBinary("mycelium"), join(bin, "mycelium"));
  writeFileSync(join(pub, "vm/mycelium/meta.toml"), 'services = ["mycelium"]\n');
  const key = generateSigningKey();
  const server = startServer({ dir: pub, hostname: "127.0.0.1", port: 0, log: () => {} });
  try {
    const manifest = join(pub, "bootstrapper.toml");
    const text = buildManifest(pub, {
      baseUrl: `http://127.0.0.1:${server.port}/`,
      version: 1,
      expires: new Date(Date.now() + 86_400_000),
    });
    publishSigned(manifest, new TextEncoder().encode(text), key, "v1");
    verifyMessage(readFileSync(manifest), readFileSync(`${manifest}.minisig`, "utf8"), [key]);
    return await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, name),
      manifest,
      vm,
      kernel,
      cacheDir: join(dir, "cache"),
    });
  } finally {
    await server.stop();
  }
}

/** QEMU arguments for a second NIC on a tap device of the namespace (the guest's eth1). */
export function tapNic(tap: string): string[] {
  return [
    "-netdev",
    `tap,id=t0,ifname=${tap},script=no,downscript=no`,
    "-device",
    "virtio-net-pci,netdev=t0,romfile=",
  ];
}

/**
 * The vm.toml of an overlay test VM: eth0 on QEMU's user network (the
 * test's agent port forward, allowed from 10.0.2.2 only), eth1 on the tap
 * with `vmLink`, and mycelium peering statically with the host node at
 * `hostLink` only.
 */
export function overlayVmConfig(o: {
  hostname: string;
  vmLink: string;
  hostLink: string;
  uiAllow?: string[];
}): VmConfigInput {
  return {
    hostname: o.hostname,
    modules: ["virtio_pci", "virtio_net"],
    network: {
      dns: ["10.0.2.3"],
      interfaces: [
        { name: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2" },
        { name: "eth1", address6: `${o.vmLink}/64` },
      ],
    },
    ui: { allow: o.uiAllow ?? [] },
    agent: { listen: ["0.0.0.0"], allow: ["10.0.2.2/32"] },
    mycelium: { peers: [`tcp://[${o.hostLink}]:9651`] },
  };
}
