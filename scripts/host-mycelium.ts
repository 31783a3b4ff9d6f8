/**
 * A real mycelium node on the host, for `npm run demo` and bench/mycelium.ts.
 *
 * The demo's node runs in the host's own network namespace: its TUN gives
 * the host an overlay address and the route 400::/7, so a browser on the
 * host opens `http://[VM overlay address]:9999/` like any other overlay URL.
 * VMs on QEMU's user network peer with it at `tcp://10.0.2.2:PORT` (slirp
 * hands that connection to the host's loopback), so no tap device, bridge or
 * namespace is needed. A TUN needs CAP_NET_ADMIN: as root the overlay is on,
 * otherwise the demo says why it is off.
 *
 * Its API ports are free loopback ports, its peer port 9651 when free (the
 * port operators expect), and peer discovery is off (no UDP beacons on the
 * operator's LAN). The node gets SIGKILL when the process that started it
 * dies (setpriv --pdeathsig) and its TUN and routes go with it.
 *
 * (test/vm/mycelium-node.ts has the tests' node, in a namespace they create,
 * with fixed ports; this one needs free ports and the host namespace.)
 */

import { createSocket } from "node:dgram";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { dirname } from "node:path";
import { addressOfKey, generateKey } from "../lib/mycelium.ts";

/** QEMU user networking's address of the host, as a guest sees it. */
export const SLIRP_HOST = "10.0.2.2";
/** mycelium's default peer port. */
export const MYCELIUM_PORT = 9651;
/** Linux's limit on an interface name (IFNAMSIZ - 1). */
const IFNAME_MAX = 15;
const CAP_NET_ADMIN = 12;

/** Pure: whether /proc/PID/status text grants CAP_NET_ADMIN (needed to create a TUN). */
export function hasNetAdmin(status: string): boolean {
  const hex = /^CapEff:\s*([0-9a-f]+)$/im.exec(status)?.[1];
  return hex !== undefined && ((BigInt(`0x${hex}`) >> BigInt(CAP_NET_ADMIN)) & 1n) === 1n;
}

/** What a node is started with. */
export interface NodeOptions {
  /** 32-byte key file; created (0600) when missing, so its address lasts across runs. */
  keyFile: string;
  /** TUN name (at most 15 characters). */
  tun: string;
  /** TCP and QUIC peer port. */
  port: number;
  /** Admin API (HTTP) address, e.g. 127.0.0.1:8989; polled from this namespace. */
  apiAddr: string;
  /** JSON-RPC API address (a second daemon on one host needs its own). */
  jsonrpcAddr: string;
  /** Static peers (mycelium peer URIs). */
  peers?: string[];
  /** The daemon's log (it writes ANSI colours even to a file). */
  logFile: string;
  /** Run it in this network namespace (`ip netns exec`); default: this one. */
  netns?: string;
}

/** Pure: mycelium's command line for a node (--peers last: it takes every value after it). */
export function nodeArgv(binary: string, o: NodeOptions): string[] {
  if (o.tun.length > IFNAME_MAX || !/^[A-Za-z0-9_.-]+$/.test(o.tun))
    throw new Error(`TUN name "${o.tun}": at most ${IFNAME_MAX} of A-Z a-z 0-9 _ . -`);
  const argv = [
    binary,
    "-k",
    o.keyFile,
    "--tun-name",
    o.tun,
    "--tcp-listen-port",
    String(o.port),
    "--quic-listen-port",
    String(o.port),
    "--api-addr",
    o.apiAddr,
    "--jsonrpc-addr",
    o.jsonrpcAddr,
    "--disable-peer-discovery",
  ];
  if (o.peers?.length) argv.push("--peers", ...o.peers);
  return o.netns ? ["ip", "netns", "exec", o.netns, ...argv] : argv;
}

/** Whether `port` is free on every address for TCP and for UDP (mycelium takes both). */
export async function portFree(port: number): Promise<boolean> {
  const tcp = await new Promise<boolean>((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "::", () => s.close(() => resolve(true)));
  });
  if (!tcp) return false;
  return new Promise<boolean>((resolve) => {
    const u = createSocket("udp6");
    u.once("error", () => resolve(false));
    u.bind(port, "::", () => u.close(() => resolve(true)));
  });
}

/** One entry of the admin API's GET /api/v1/admin/peers (0.7.10), the fields used here. */
export interface PeerEntry {
  endpoint: { proto: string; addr?: { socket?: string } };
  connectionState: string;
}

/** A running node. */
export interface MyceliumNode {
  /** Its overlay address (from its key, confirmed by its admin API). */
  address: string;
  pid: number;
  logFile: string;
  /** Its log without ANSI colours. */
  log(): string;
  /** Its peers as the admin API lists them (`[]` when it does not answer). */
  peers(): Promise<PeerEntry[]>;
  /** SIGTERM, SIGKILL after 3 s; resolves once it is gone. */
  stop(): Promise<void>;
  /** SIGKILL now, without waiting (for process exit handlers). */
  killNow(): void;
}

/** Reads the key file, creating it (and its directory) when missing. */
function keyAddress(keyFile: string): string {
  if (!existsSync(keyFile)) {
    mkdirSync(dirname(keyFile), { recursive: true, mode: 0o700 });
    writeFileSync(keyFile, generateKey(), { mode: 0o600 });
  }
  return addressOfKey(new Uint8Array(readFileSync(keyFile)));
}

/**
 * Starts the real `mycelium` (`binary`) and waits until its admin API
 * reports the key's address; throws with the end of its log if it exits or
 * does not answer within `timeoutMs`.
 */
export async function startNode(
  binary: string,
  o: NodeOptions,
  timeoutMs = 60_000,
): Promise<MyceliumNode> {
  const address = keyAddress(o.keyFile);
  const fd = openSync(o.logFile, "w");
  const setpriv = Bun.which("setpriv");
  const argv = nodeArgv(binary, o);
  const proc = Bun.spawn(setpriv ? [setpriv, "--pdeathsig", "KILL", ...argv] : argv, {
    stdin: "ignore",
    stdout: fd,
    stderr: fd,
    // A session of its own: a Ctrl-C in the terminal reaches the caller, which stops it in order.
    detached: true,
  });
  closeSync(fd);
  const node: MyceliumNode = {
    address,
    pid: proc.pid,
    logFile: o.logFile,
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping ANSI escapes.
    log: () => readFileSync(o.logFile, "utf8").replace(/\x1b\[[0-9;]*m/g, ""),
    peers: async () => {
      const r = await fetch(`http://${o.apiAddr}/api/v1/admin/peers`, {
        signal: AbortSignal.timeout(3000),
      }).catch(() => null);
      return r?.ok ? ((await r.json()) as PeerEntry[]) : [];
    },
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      if (!(await Promise.race([proc.exited.then(() => true), Bun.sleep(3000)])))
        proc.kill("SIGKILL");
      await proc.exited;
    },
    killNow: () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGKILL");
    },
  };
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = await fetch(`http://${o.apiAddr}/api/v1/admin`, {
      signal: AbortSignal.timeout(2000),
    })
      .then((r) => (r.ok ? (r.json() as Promise<{ nodeIp?: string }>) : null))
      .catch(() => null);
    if (info?.nodeIp === address) return node;
    if (proc.exitCode !== null || Date.now() > end) {
      await node.stop();
      const why = proc.exitCode !== null ? `exited ${proc.exitCode}` : "did not answer";
      throw new Error(`mycelium ${why} (${o.logFile}):\n${node.log().trim().slice(-1500)}`);
    }
    await Bun.sleep(100);
  }
}

/**
 * Routes one overlay address into `tun` (`ip -6 route replace ADDR/128`):
 * more specific than any 400::/7, so it holds even if another mycelium on
 * the host has that route too. It goes away with the TUN.
 */
export function routeTo(address: string, tun: string): void {
  const p = Bun.spawnSync(["ip", "-6", "route", "replace", `${address}/128`, "dev", tun], {
    stderr: "pipe",
  });
  if (p.exitCode !== 0)
    throw new Error(`ip -6 route replace ${address}/128 dev ${tun}: ${p.stderr.toString().trim()}`);
}

/** One GET as a browser would send it: the HTTP status (0 when no answer came in `timeoutMs`). */
export async function httpStatus(url: string, timeoutMs: number): Promise<number> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.status;
  } catch {
    return 0;
  }
}
