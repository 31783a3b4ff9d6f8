/**
 * Overlay benchmark: READY → the VM's UI reachable over the real mycelium
 * overlay from a host node, and the daemon's memory in the VM next to
 * hero-init's. The setup is `npm run demo`'s (scripts/host-mycelium.ts): a
 * real mycelium node in the host's network namespace (TUN, route to the VM's
 * overlay address), a VM made by deployVm from the minimal template with
 * mycelium 0.7.10 as a `[vm]` binary of a signed manifest
 * (deployWithMycelium), peering with the node at tcp://10.0.2.2:PORT over
 * QEMU's user network.
 *
 * Per VM boot (the same deployment each time, so the same overlay address):
 * host-side time from the READY line on the console to (a) the host node
 * listing the VM as an alive peer and (b) the first HTTP 200 of
 * `GET http://[VM address]:9999/health` from this host (probes every 100 ms,
 * overlapping, 2 s each: before the route exists a connect hangs); in the
 * guest, from its own console stamps, when mycelium was spawned and when
 * hero-init saw the address on the TUN, minus READY (negative: before
 * READY; mycelium starts once the UI is up and IPv6 addresses have passed
 * duplicate address detection, never delaying READY). 5 s after (b), through the guest
 * agent over the overlay: Rss and Pss of mycelium and of PID 1 from
 * /proc/PID/smaps_rollup.
 *
 * Baseline, interleaved (the order alternates per round): the same binary
 * started natively in a network namespace joined to the host by a veth
 * pair, peering with the same host node over TCP, a Bun HTTP server on
 * [::]:9999 in that namespace; spawn → (a) and (b) the same way, then its
 * memory. The ratio says what a VM under TCG plus hero-init's start-up of
 * the daemon add to mycelium's own peering and routing.
 *
 * Needs root (TUNs, a namespace). Run: node_modules/.bin/bun bench/mycelium.ts
 * (BENCH_RUNS=N to change 3), or `bun bench/run.ts mycelium`.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Deployment } from "../host/deploy.ts";
import { ensureKernel } from "../host/kernel.ts";
import { addressOfKey, generateKey } from "../lib/mycelium.ts";
import {
  hasNetAdmin,
  httpStatus,
  type MyceliumNode,
  routeTo,
  SLIRP_HOST,
  startNode,
} from "../scripts/host-mycelium.ts";
import { vendorBinary } from "../test/vendor.ts";
import { deployWithMycelium, Netns } from "../test/vm/mycelium-node.ts";
import { bootVm, freePort } from "../test/vm/qemu.ts";
import { median, memOf, out, parseRollup, printRatios, ratio } from "./lib.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const HERO = join(import.meta.dir, "../dist/hero-init");
const TUN = "hero-bench";
const HOST_V4 = "10.254.77.1";
const BASE_V4 = "10.254.77.2";
const DEADLINE_MS = 300_000;

/** One boot or one native start: host-side seconds from t0 (READY or spawn), memory. */
interface Sample {
  peerAlive: number;
  http200: number;
  mem: Record<string, { rssKb: number; pssKb: number }>;
  /** The VM's console (guest stamps). */
  console?: string;
}

/** Everything the rounds share. */
interface Setup {
  dir: string;
  bin: string;
  host: MyceliumNode;
  port: number;
  d: Deployment;
  ns: Netns;
  baseKey: string;
  baseAddr: string;
}

if (!hasNetAdmin(readFileSync("/proc/self/status", "utf8"))) {
  console.error(
    "bench/mycelium.ts needs root (CAP_NET_ADMIN): TUN devices and a network namespace",
  );
  process.exit(2);
}

/** What to undo at the end, last made first (the node, the namespace, the temp dir…). */
const undo: (() => unknown)[] = [];

/**
 * The baseline's network namespace: a veth pair to the host (HOST_V4 here,
 * BASE_V4 there) and a Bun HTTP server on [::]:9999 in it.
 */
async function baselineNamespace(): Promise<Netns> {
  const ns = Netns.create(`hero-bench-myc-${process.pid}`);
  undo.push(() => ns.close());
  const veth = `hbm${process.pid % 100000}`;
  const must = (argv: string[]) => {
    const p = Bun.spawnSync(argv, { stderr: "pipe" });
    if (p.exitCode !== 0) throw new Error(`${argv.join(" ")}: ${p.stderr.toString().trim()}`);
  };
  must(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns.name]);
  must(["ip", "addr", "add", `${HOST_V4}/30`, "dev", veth]);
  must(["ip", "link", "set", veth, "up"]);
  ns.ip("addr", "add", `${BASE_V4}/30`, "dev", "eth0");
  ns.ip("link", "set", "eth0", "up");
  const serveJs = `Bun.serve({ hostname: "::", port: 9999, fetch: () => new Response("ok") })`;
  const setpriv = Bun.which("setpriv");
  const argv = ["ip", "netns", "exec", ns.name, process.execPath, "-e", serveJs];
  const server = Bun.spawn(setpriv ? [setpriv, "--pdeathsig", "KILL", ...argv] : argv, {
    stdio: ["ignore", "ignore", "inherit"],
  });
  // A live child keeps Bun running: it goes before the namespace.
  undo.push(() => server.kill("SIGKILL"));
  for (let i = 0; ns.http("http://[::1]:9999/", { timeoutS: 2 }).status !== 200; i++) {
    if (i > 100) throw new Error("the baseline's HTTP server did not start");
    await Bun.sleep(100);
  }
  return ns;
}

/** The host node, the VM's deployment and the baseline's namespace. */
async function setup(): Promise<Setup> {
  const kernel = await ensureKernel();
  const dir = mkdtempSync(join(tmpdir(), "hero-bench-myc-"));
  undo.push(() => rmSync(dir, { recursive: true, force: true }));
  const bin = vendorBinary("mycelium");
  const port = await freePort();
  const host = await startNode(bin, {
    keyFile: join(dir, "host.key"),
    tun: TUN,
    port,
    apiAddr: `127.0.0.1:${await freePort()}`,
    jsonrpcAddr: `127.0.0.1:${await freePort()}`,
    logFile: join(dir, "host-node.log"),
  });
  undo.push(() => host.stop());
  const d = await deployWithMycelium(
    dir,
    "vm",
    {
      hostname: "bench-myc",
      network: {
        dns: ["10.0.2.3"],
        interfaces: [{ name: "eth0", address: "10.0.2.15/24", gateway: "10.0.2.2" }],
      },
      mycelium: { peers: [`tcp://${SLIRP_HOST}:${port}`] },
    },
    kernel,
  );
  routeTo(d.myceliumAddress as string, TUN);
  const ns = await baselineNamespace();
  const key = generateKey();
  const baseKey = join(dir, "base.key");
  await Bun.write(baseKey, key);
  const baseAddr = addressOfKey(key);
  routeTo(baseAddr, TUN);
  return { dir, bin, host, port, d, ns, baseKey, baseAddr };
}

/**
 * Waits from t0 (performance.now()) until the host node lists an alive peer
 * whose socket contains `from` and a GET of `url` answers 200; returns both
 * times in seconds.
 */
async function untilReachable(
  s: Setup,
  t0: number,
  from: string,
  url: string,
  stop: () => boolean,
): Promise<{ peerAlive: number; http200: number }> {
  let peerAt = 0;
  let httpAt = 0;
  let lastPeerPoll = 0;
  const end = Date.now() + DEADLINE_MS;
  while (!peerAt || !httpAt) {
    if (Date.now() > end || stop()) throw new Error(`${url}: not reachable (peer: ${!!peerAt})`);
    const now = performance.now();
    if (!httpAt)
      void httpStatus(url, 2000).then((code) => {
        if (code === 200 && !httpAt) httpAt = performance.now();
      });
    if (!peerAt && now - lastPeerPoll > 200) {
      lastPeerPoll = now;
      void s.host.peers().then((ps) => {
        const alive = ps.some(
          (p) => (p.endpoint.addr?.socket ?? "").includes(from) && p.connectionState === "alive",
        );
        if (alive && !peerAt) peerAt = performance.now();
      });
    }
    await Bun.sleep(100);
  }
  return { peerAlive: (peerAt - t0) / 1000, http200: (httpAt - t0) / 1000 };
}

/** Rss/Pss lines of `who` (mycelium, hero-init) in the agent's output. */
function memLines(text: string, who: string) {
  return parseRollup(
    text
      .split("\n")
      .filter((l) => l.startsWith(`${who} `))
      .map((l) => l.slice(who.length + 1))
      .join("\n"),
  );
}

/** Waits (up to 60 s) until the host node has no alive peer from `from`: the previous run's is gone. */
async function previousPeerGone(s: Setup, from: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const ps = await s.host.peers();
    if (
      !ps.some(
        (p) => (p.endpoint.addr?.socket ?? "").includes(from) && p.connectionState === "alive",
      )
    )
      return;
    await Bun.sleep(200);
  }
}

/** One boot of the VM. */
async function vmSample(s: Setup, i: number): Promise<Sample> {
  const addr = s.d.myceliumAddress as string;
  await previousPeerGone(s, "127.0.0.1");
  await using vm = await bootVm({
    kernel: s.d.kernel,
    initrd: s.d.initrd,
    append: s.d.kernelCmdline,
    name: `bench-mycelium-${i}`,
  });
  const deadline = Date.now() + DEADLINE_MS;
  while (!/hero-init boot: READY/.test(vm.console())) {
    if (Date.now() > deadline || !vm.running) throw new Error("no READY");
    await Bun.sleep(25);
  }
  const t0 = performance.now();
  // The VM's slirp connection reaches the host node from the host's loopback.
  const r = await untilReachable(
    s,
    t0,
    "127.0.0.1",
    `http://[${addr}]:9999/health`,
    () => !vm.running,
  );
  await Bun.sleep(5000);
  const sh = `p=$(zinit status mycelium | sed -n 's/^pid: //p'); for x in "mycelium $p" "hero-init 1"; do set -- $x; grep -E '^(Rss|Pss):' /proc/$2/smaps_rollup | sed "s/^/$1 /"; done`;
  const a = Bun.spawnSync(
    [
      HERO,
      "agent",
      "exec",
      "--addr",
      `http://[${addr}]:9998`,
      "--token",
      s.d.agentToken,
      "--",
      "sh",
      "-c",
      sh,
    ],
    { stdout: "pipe", stderr: "pipe", timeout: 60_000 },
  );
  if (a.exitCode !== 0)
    console.error(`# agent exec over the overlay: exit ${a.exitCode} ${a.stderr}`);
  const text = a.stdout.toString();
  return {
    ...r,
    mem: { mycelium: memLines(text, "mycelium"), "hero-init": memLines(text, "hero-init") },
    console: vm.cleanConsole(),
  };
}

/** One native start of the same daemon in the baseline's namespace. */
async function nativeSample(s: Setup, i: number): Promise<Sample> {
  await previousPeerGone(s, BASE_V4);
  const t0 = performance.now();
  const node = await startNode(s.bin, {
    keyFile: s.baseKey,
    tun: "mycelium",
    port: 9651,
    apiAddr: `${BASE_V4}:8989`,
    jsonrpcAddr: "127.0.0.1:8990",
    peers: [`tcp://${HOST_V4}:${s.port}`],
    logFile: join(s.dir, `native-${i}.log`),
    netns: s.ns.name,
  });
  try {
    const r = await untilReachable(s, t0, BASE_V4, `http://[${s.baseAddr}]:9999/`, () => false);
    await Bun.sleep(5000);
    return { ...r, mem: { mycelium: memOf(node.pid) } };
  } finally {
    await node.stop();
  }
}

const stamp = (re: RegExp, c = "") => Number(re.exec(c)?.[1] ?? Number.NaN);
const READY_AT = /READY at ([\d.]+) s uptime/;
const SPAWN_AT = /\[\s*([\d.]+)\] hero-init mycelium: IPv6 addresses usable/;
const ADDRESS_AT = /\[\s*([\d.]+)\] hero-init mycelium: address \S+ on /;

/** Prints every line, ratios last. */
function report(vm: Sample[], native: Sample[]): void {
  const med = (xs: Sample[], f: (x: Sample) => number) => median(xs.map(f).filter(Number.isFinite));
  const each = (xs: Sample[]) => xs.map((x) => x.http200.toFixed(2)).join(" ");
  out("runs", RUNS);
  out("runs_ok_vm", vm.length);
  out("runs_ok_native", native.length);
  out(
    "vm_ready_to_host_peer_alive_median_s",
    med(vm, (x) => x.peerAlive),
  );
  out(
    "vm_ready_to_overlay_http200_median_s",
    med(vm, (x) => x.http200),
  );
  out("vm_ready_to_overlay_http200_min_s", Math.min(...vm.map((x) => x.http200)));
  out("vm_ready_to_overlay_http200_each_s", each(vm));
  const guest = (re: RegExp) => (x: Sample) => stamp(re, x.console) - stamp(READY_AT, x.console);
  out("vm_guest_mycelium_spawn_minus_ready_median_s", med(vm, guest(SPAWN_AT)));
  out("vm_guest_address_on_tun_minus_ready_median_s", med(vm, guest(ADDRESS_AT)));
  out(
    "native_start_to_host_peer_alive_median_s",
    med(native, (x) => x.peerAlive),
  );
  out(
    "native_start_to_overlay_http200_median_s",
    med(native, (x) => x.http200),
  );
  out("native_start_to_overlay_http200_min_s", Math.min(...native.map((x) => x.http200)));
  out("native_start_to_overlay_http200_each_s", each(native));
  const mem = (xs: Sample[], who: string, k: "rssKb" | "pssKb") =>
    med(xs, (x) => x.mem[who]?.[k] ?? Number.NaN);
  out("vm_mycelium_rss_kb", mem(vm, "mycelium", "rssKb"));
  out("vm_mycelium_pss_kb", mem(vm, "mycelium", "pssKb"));
  out("vm_hero_init_rss_kb", mem(vm, "hero-init", "rssKb"));
  out("vm_hero_init_pss_kb", mem(vm, "hero-init", "pssKb"));
  out("native_mycelium_rss_kb", mem(native, "mycelium", "rssKb"));
  out("native_mycelium_pss_kb", mem(native, "mycelium", "pssKb"));
  ratio(
    "ratio_overlay_http200_median_vm_from_ready_vs_native_from_start",
    med(vm, (x) => x.http200) / med(native, (x) => x.http200),
  );
  ratio(
    "ratio_rss_in_vm_mycelium_vs_hero_init",
    mem(vm, "mycelium", "rssKb") / mem(vm, "hero-init", "rssKb"),
  );
  ratio(
    "ratio_rss_mycelium_in_vm_vs_native",
    mem(vm, "mycelium", "rssKb") / mem(native, "mycelium", "rssKb"),
  );
  printRatios();
}

try {
  const s = await setup();
  const vm: Sample[] = [];
  const native: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    // A failed run is reported on stderr and left out; the counts show it.
    const run = (f: (s: Setup, i: number) => Promise<Sample>, into: Sample[], name: string) => () =>
      f(s, i).then(
        (x) => void into.push(x),
        (e) => console.error(`# ${name} ${i} failed: ${(e as Error).message.slice(0, 2000)}`),
      );
    const steps = [run(vmSample, vm, "vm"), run(nativeSample, native, "native")];
    if (i % 2) steps.reverse();
    for (const step of steps) await step();
  }
  report(vm, native);
} finally {
  for (const u of undo.reverse()) await u();
}
