/**
 * `npm run demo`: the main job end to end. Publishes a signed manifest
 * (`hero-init manifest keygen/build/verify`) with one `[vm]` binary and, for
 * the overlay, the real mycelium; deploys the `minimal` template with it
 * (deploy_vm); starts a mycelium node on the host (scripts/host-mycelium.ts)
 * that the VM peers with; boots the VM with `hero-init vm run` (QEMU, TCG),
 * waits for READY, prints the UI's local address, then the VM's overlay URL
 * once a GET from the host over the overlay has answered; and powers the VM
 * off on Ctrl-C (ACPI power button; a second Ctrl-C stops it at once), then
 * stops the node. `vm run` runs in a session of its own and gets each Ctrl-C
 * from here exactly once: were it in the terminal's process group too, one
 * keypress would reach it twice and count as the second.
 *
 * The overlay needs CAP_NET_ADMIN (root) for the node's TUN; without it, or
 * with --no-mycelium, the demo runs as before and says so.
 */
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { vendorBinary } from "../test/vendor.ts";
import { MYCELIUM_VERSION } from "../test/vm/mycelium-node.ts";
import { freePort } from "../test/vm/qemu.ts";
import { DEMO_USAGE, type DemoArgs, demoVmToml, parseDemoArgs } from "./demo-config.ts";
import {
  hasNetAdmin,
  httpStatus,
  MYCELIUM_PORT,
  type MyceliumNode,
  portFree,
  routeTo,
  SLIRP_HOST,
  startNode,
} from "./host-mycelium.ts";

const ROOT = join(import.meta.dir, "..");
const HERO = join(ROOT, "dist/hero-init");
const work = join(ROOT, ".cache/demo");
const TUN = "hero-demo";
/** How long the overlay may take after READY (TCG, a loaded machine) before the demo gives up on it. */
const OVERLAY_TIMEOUT_MS = 300_000;

function run(args: string[]): void {
  const p = Bun.spawnSync([HERO, ...args], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) process.exit(p.exitCode ?? 1);
}

/** Why the host cannot run the demo's node, or null when it can. */
function overlayBlocker(): string | null {
  if (!hasNetAdmin(readFileSync("/proc/self/status", "utf8")))
    return "the host node's TUN needs root (CAP_NET_ADMIN); run the demo as root for it";
  if (!Bun.which("ip")) return "`ip` (iproute2) is missing";
  if (existsSync(`/sys/class/net/${TUN}`))
    return `an interface ${TUN} exists already (another demo running?)`;
  return null;
}

/** The demo's host node, the peer URI the VM dials for it, the daemon's binary and the node's peer port. */
interface HostNode {
  node: MyceliumNode;
  peer: string;
  bin: string;
  port: number;
}

/** The host's node; null (and why, printed) when the overlay is off. */
async function startHostNode(a: DemoArgs): Promise<HostNode | null> {
  const blocker = a.mycelium ? overlayBlocker() : null;
  if (!a.mycelium || blocker) {
    console.log(`demo: no mycelium overlay: ${blocker ?? "--no-mycelium"}`);
    return null;
  }
  try {
    const bin = vendorBinary("mycelium");
    const port = (await portFree(MYCELIUM_PORT)) ? MYCELIUM_PORT : await freePort();
    const node = await startNode(bin, {
      keyFile: join(work, "host-node.key"),
      tun: TUN,
      port,
      apiAddr: `127.0.0.1:${await freePort()}`,
      jsonrpcAddr: `127.0.0.1:${await freePort()}`,
      peers: a.peers,
      logFile: join(work, "host-node.log"),
    });
    console.log(
      `demo: host mycelium node ${node.address} on TUN ${TUN}, peers on TCP/QUIC port ${port} (log ${node.logFile})`,
    );
    return { node, peer: `tcp://${SLIRP_HOST}:${port}`, bin, port };
  } catch (e) {
    console.log(`demo: no mycelium overlay: the host node did not start: ${(e as Error).message}`);
    return null;
  }
}

/**
 * The publisher's directory, its signing key (made once) and the signed
 * bootstrapper.toml: hello-fleet, plus mycelium when `mycelium` is its binary.
 * Returns the manifest's path.
 */
function publish(mycelium: string | null): string {
  const pub = join(work, "pub");
  rmSync(pub, { recursive: true, force: true });
  // A tiny "fleet binary" the manifest pins by sha256.
  const tool = new TextEncoder().encode(
    '#!/bin/sh\nwhile true; do echo "hello-fleet $(date): the VM runs the manifest\'s binary"; sleep 10; done\n',
  );
  mkdirSync(join(pub, "vm/hello-fleet/1.0.0"), { recursive: true });
  writeFileSync(join(pub, "vm/hello-fleet/1.0.0/hello-fleet"), tool, { mode: 0o755 });
  writeFileSync(join(pub, "vm/hello-fleet/meta.toml"), 'services = ["hello-fleet"]\n');
  if (mycelium) {
    mkdirSync(join(pub, "vm/mycelium", MYCELIUM_VERSION), { recursive: true });
    copyFileSync(mycelium, join(pub, "vm/mycelium", MYCELIUM_VERSION, "mycelium"));
    writeFileSync(join(pub, "vm/mycelium/meta.toml"), 'services = ["mycelium"]\n');
  }
  const keys = join(work, "keys");
  if (!existsSync(join(keys, "hero.key"))) run(["manifest", "keygen", "--out", keys]);
  run(["manifest", "build", pub, "--base-url", `file://${pub}/`, "--key", join(keys, "hero.key")]);
  const manifest = join(pub, "bootstrapper.toml");
  run(["manifest", "verify", manifest, "--pub", join(keys, "hero.pub")]);
  console.log(
    `demo: hello-fleet sha256 ${createHash("sha256").update(tool).digest("hex").slice(0, 16)}…${mycelium ? `, mycelium ${MYCELIUM_VERSION}` : ""} in the signed manifest`,
  );
  return manifest;
}

/** deploy_vm: the minimal template + the manifest's [vm] binaries + the VM config and service. */
function deploy(manifest: string, peer: string | null): { myceliumAddress: string | null } {
  mkdirSync(join(work, "services"), { recursive: true });
  writeFileSync(join(work, "services/hello-fleet.yaml"), "exec: hello-fleet\nlog: stdout\n");
  writeFileSync(join(work, "vm.toml"), demoVmToml(peer));
  console.log(
    "demo: deploy_vm — minimal template + signed manifest's [vm] binaries + VM config (first run fetches the Debian kernel)…",
  );
  run([
    "deploy",
    "--template",
    "minimal",
    "--format",
    "initramfs",
    "--out",
    join(work, "vm"),
    "--manifest",
    manifest,
    "--vm-config",
    join(work, "vm.toml"),
    "--services",
    join(work, "services"),
  ]);
  return JSON.parse(readFileSync(join(work, "vm/deployment.json"), "utf8"));
}

/**
 * Waits until the VM's UI answers over the overlay from this host, as a
 * browser here would reach it (GET / and /health through the node's TUN);
 * false if the VM is stopping or the time ran out.
 */
async function waitOverlay(url: string, stopped: () => boolean): Promise<boolean> {
  const end = Date.now() + OVERLAY_TIMEOUT_MS;
  while (!stopped() && Date.now() < end) {
    if ((await httpStatus(`${url}health`, 3000)) === 200 && (await httpStatus(url, 10_000)) === 200)
      return true;
    await Bun.sleep(1000);
  }
  return false;
}

let args: DemoArgs;
try {
  args = parseDemoArgs(process.argv.slice(2));
} catch (e) {
  console.error(`demo: ${(e as Error).message}\n${DEMO_USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(DEMO_USAGE);
  process.exit(0);
}
mkdirSync(work, { recursive: true });
const host = await startHostNode(args);
// Whatever ends this process, the node goes too (setpriv's pdeathsig covers a SIGKILL).
process.on("exit", () => host?.node.killNow());
const { myceliumAddress } = deploy(publish(host?.bin ?? null), host?.peer ?? null);
if (host && myceliumAddress) routeTo(myceliumAddress, TUN);

const port = await freePort();
const log = join(work, "console.log");
console.log(`demo: booting with hero-init as PID 1 (QEMU, TCG: ~10 s); console → ${log}`);
const vm = Bun.spawn([HERO, "vm", "run", join(work, "vm"), "--port", String(port)], {
  stdout: openSync(log, "w"),
  stderr: "inherit",
  stdin: "ignore",
  detached: true,
});
let interrupts = 0;
process.on("SIGINT", () => {
  console.log(
    ++interrupts === 1
      ? "\ndemo: powering the VM off (ACPI power button; Ctrl-C again stops it at once)…"
      : "\ndemo: stopping the VM now…",
  );
  vm.kill("SIGINT");
});
for (const sig of ["SIGTERM", "SIGHUP"] as const) process.on(sig, () => vm.kill("SIGTERM"));
for (let i = 0; i < 1800 && vm.exitCode === null; i++) {
  if (readFileSync(log, "utf8").includes("hero-init boot: READY")) break;
  await Bun.sleep(100);
}
if (vm.exitCode !== null) {
  console.error(`demo: the VM stopped before READY; see ${log}`);
  process.exit(1);
}
const url = `http://127.0.0.1:${port}/`;
const health = await fetch(`${url}health`).then(
  (r) => r.text(),
  (e) => String(e),
);
console.log(`demo: READY. UI address: ${url}  (health: ${health})`);
console.log(`demo: UI password (one-time, admin): in ${join(work, "vm", "ui-password")}`);
const stopping = () => interrupts > 0 || vm.exitCode !== null;
if (host && myceliumAddress && !stopping()) {
  const overlay = `http://[${myceliumAddress}]:9999/`;
  console.log("demo: waiting for the VM's mycelium to peer with the host node (seconds)…");
  const t0 = Date.now();
  if (await waitOverlay(overlay, stopping))
    console.log(
      `demo: over mycelium — open ${overlay} in a browser on this host (checked: it answered here over the overlay, ${((Date.now() - t0) / 1000).toFixed(0)} s after READY).\n` +
        `demo: from another machine: run mycelium there with --peers tcp://<this host's IP>:${host.port}, then open the same URL.`,
    );
  else if (!stopping())
    console.log(
      `demo: the VM's UI did not answer over the overlay within ${OVERLAY_TIMEOUT_MS / 1000} s; see ${log} and ${host.node.logFile}`,
    );
}
if (!stopping()) console.log("demo: press Ctrl-C to power the VM off.");
if (process.env.DEMO_EXIT_AFTER_READY) vm.kill("SIGINT");
const code = await vm.exited;
await host?.node.stop();
console.log(
  (code === 0
    ? "demo: the VM powered off"
    : `demo: the VM was stopped (vm run exit ${code}: 124 power-down timed out, 130 second Ctrl-C)`) +
    (host ? "; the host mycelium node stopped." : "."),
);
process.exit(code);
