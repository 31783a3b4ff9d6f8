/**
 * hero-init against the REAL mycelium (0.7.10, built from ../shared/vendor by
 * scripts/build-vendor.sh; test/vendor.ts finds it, never skipped):
 * - key files both ways: a key hero-init wrote is read by `mycelium inspect`
 *   and at run time with the address hero-init predicted; a key the daemon
 *   generated is read by hero-init;
 * - the admin API of two daemons on the host (--no-tun), peered over TCP on
 *   loopback, driven through hero-init's admin client (guest/mycelium/admin.ts)
 *   and the `hero-init mycelium …` commands over a control socket;
 * - the TUN, in a network namespace: the address hero-init's watcher waits for.
 * (The stand-in that earlier tests used is gone: the real daemon runs here
 * and in the VM tests.)
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ControlApi } from "../../guest/control/protocol.ts";
import { startControlServer } from "../../guest/control/server.ts";
import { myceliumAdmin } from "../../guest/mycelium/admin.ts";
import {
  addressFromAdmin,
  type MyceliumStatus,
  watchMycelium,
} from "../../guest/mycelium/discover.ts";
import { addressOfKey, generateKey, isPeerUri, publicKeyOf, subnetOf } from "../../lib/mycelium.ts";
import { until as poll } from "../helpers/poll.ts";
import { vendorBinary } from "../vendor.ts";

setDefaultTimeout(90_000);
const ROOT = join(import.meta.dir, "../..");
const BUN = process.execPath;
const MYC = vendorBinary("mycelium");
const dir = mkdtempSync(join(tmpdir(), "hero-myc-real-"));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const spawned: Daemon[] = [];

afterAll(() => {
  for (const d of spawned) d.proc.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

/** A TCP port free right now (the kernel's pick). */
function freePort(): number {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** Polls every 200 ms until `check` gives a value, for at most `ms`. */
const until = <T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> =>
  poll(what, check, ms, 200);

interface Daemon {
  proc: Bun.Subprocess;
  api: string;
  tcp: number;
  out: () => string;
}

/** Writes a hero-init key to `name`.key; returns the key. */
function writeKey(name: string): Uint8Array {
  const key = generateKey();
  writeFileSync(join(dir, `${name}.key`), key, { mode: 0o600 });
  return key;
}

/** Starts the real daemon without a TUN, its ports on loopback, and waits for its API. */
async function startDaemon(name: string, peers: string[] = []) {
  const api = `127.0.0.1:${freePort()}`;
  const tcp = freePort();
  const args = [
    ...["-k", join(dir, `${name}.key`), "--no-tun", "--disable-peer-discovery", "--disable-quic"],
    ...["--tcp-listen-port", String(tcp), "--api-addr", api],
    ...["--jsonrpc-addr", `127.0.0.1:${freePort()}`],
    ...(peers.length ? ["--peers", ...peers] : []),
  ];
  const cmd = [MYC, ...args];
  let out = "";
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  for (const s of [proc.stdout, proc.stderr])
    void (async () => {
      for await (const c of s) out += new TextDecoder().decode(c);
    })();
  const d: Daemon = { proc, api, tcp, out: () => out };
  spawned.push(d);
  await until(`${name}'s admin API at ${api}`, async () => {
    if (proc.exitCode !== null) throw new Error(`${name} exited ${proc.exitCode}: ${out}`);
    return (await fetch(`http://${api}/api/v1/admin`)).ok || undefined;
  });
  return d;
}

const getJson = async (api: string, path: string) =>
  (await fetch(`http://${api}/api/v1/admin${path}`)).json();
/** The raw answer of a POST (add) or DELETE (remove) of a peer: status and text. */
async function raw(api: string, method: "POST" | "DELETE", endpoint: string) {
  const r =
    method === "POST"
      ? await fetch(`http://${api}/api/v1/admin/peers`, {
          method,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ endpoint }),
        })
      : await fetch(`http://${api}/api/v1/admin/peers/${encodeURIComponent(endpoint)}`, {
          method,
        });
  return { status: r.status, text: await r.text() };
}
/** What a call of the admin client gave: its result, or its error's code and message. */
async function outcome(p: Promise<unknown>) {
  try {
    return { result: await p };
  } catch (e) {
    return { code: (e as { code?: string }).code, message: (e as Error).message };
  }
}

describe("the real mycelium 0.7.10: key files", () => {
  test("`mycelium inspect --json -k KEY` gives our public key and address", () => {
    for (let i = 0; i < 5; i++) {
      const key = writeKey("inspect");
      const p = Bun.spawnSync([MYC, "inspect", "--json", "-k", join(dir, "inspect.key")]);
      expect(p.exitCode).toBe(0);
      const got = JSON.parse(p.stdout.toString()) as { publicKey: string; address: string };
      expect(got).toEqual({ publicKey: hex(publicKeyOf(key)), address: addressOfKey(key) });
    }
  });

  test("a key the daemon generated (generate-keys) is read by hero-init: the same public key and address", () => {
    for (let i = 0; i < 5; i++) {
      const file = join(dir, `generated-${i}.key`);
      expect(Bun.spawnSync([MYC, "generate-keys", "-k", file]).exitCode).toBe(0);
      expect(statSync(file).mode & 0o777).toBe(0o640);
      const key = new Uint8Array(readFileSync(file));
      expect(key.length).toBe(32);
      const p = Bun.spawnSync([MYC, "inspect", "--json", "-k", file]);
      const got = JSON.parse(p.stdout.toString()) as { publicKey: string; address: string };
      expect({ publicKey: hex(publicKeyOf(key)), address: addressOfKey(key) }).toEqual(got);
    }
  });
});

describe("the real mycelium's admin API: two daemons peered over TCP on loopback", () => {
  let keyA: Uint8Array;
  let keyB: Uint8Array;
  let a: Daemon;
  let b: Daemon;
  let admA: ReturnType<typeof myceliumAdmin>;
  let admB: ReturnType<typeof myceliumAdmin>;
  /** B's peer A, as B lists it and as the commands take it. */
  let aUri: string;
  const peersOf = async (adm: ReturnType<typeof myceliumAdmin>) =>
    (await adm("mycelium_peers", [])) as {
      endpoint: { proto: string; addr: { socket: string } };
      type: string;
      connectionState: string;
    }[];

  beforeAll(async () => {
    keyA = writeKey("a");
    keyB = writeKey("b");
    a = await startDaemon("a");
    aUri = `tcp://127.0.0.1:${a.tcp}`;
    b = await startDaemon("b", [aUri]);
    admA = myceliumAdmin(a.api, () => null);
    admB = myceliumAdmin(b.api, () => null);
  });

  test("each daemon runs on hero-init's key: /api/v1/admin gives the predicted address, subnet and public key", async () => {
    for (const [d, key] of [
      [a, keyA],
      [b, keyB],
    ] as const) {
      const body = (await getJson(d.api, "")) as Record<string, unknown>;
      expect(Object.keys(body).sort()).toEqual([
        "nodeIp",
        "nodePubkey",
        "nodeStartTime",
        "nodeSubnet",
      ]);
      expect(typeof body.nodeStartTime).toBe("number");
      expect(addressFromAdmin(body)).toEqual({
        address: addressOfKey(key),
        subnet: subnetOf(addressOfKey(key)),
        pubkey: hex(publicKeyOf(key)),
      });
    }
  });

  test("mycelium_peers lists B's static peer and A's inbound one as the daemon gives them; `mycelium peers` prints URIs remove-peer takes", async () => {
    const { peersText } = await import("../../cli/mycelium.ts");
    const bp = await until("B's peer A alive", async () => {
      const p = await peersOf(admB);
      return p[0]?.connectionState === "alive" ? p : undefined;
    });
    expect(bp as unknown[]).toEqual([
      {
        endpoint: { proto: "tcp", addr: { socket: `127.0.0.1:${a.tcp}` } },
        type: "static",
        connectionState: "alive",
        txBytes: expect.any(Number),
        rxBytes: expect.any(Number),
        discovered: expect.any(Number),
        lastConnected: expect.any(Number),
      },
    ]);
    expect(peersText(bp)).toBe(`${aUri} static alive\n`);
    const ap = await until("A's inbound peer", async () => {
      const p = await peersOf(admA);
      return p.length ? p : undefined;
    });
    expect(ap).toHaveLength(1);
    expect(ap[0]).toMatchObject({ type: "inbound", connectionState: "alive" });
    const line = peersText(ap);
    expect(line).toMatch(/^tcp:\/\/\[::ffff:127\.0\.0\.1\]:\d+ inbound alive\n$/);
    expect(isPeerUri(line.split(" ")[0] as string)).toBe(true);
  });

  test("remove-peer and add-peer take effect: B drops A and the link goes; B adds A back and it comes alive", async () => {
    expect(await admB("mycelium_removePeer", [aUri])).toBeNull();
    expect(await peersOf(admB)).toEqual([]);
    await until("A to drop B's connection", async () =>
      (await peersOf(admA)).length === 0 ? true : undefined,
    );
    expect(await admB("mycelium_addPeer", { endpoint: aUri })).toBeNull();
    await until("B's peer A alive again", async () =>
      (await peersOf(admB))[0]?.connectionState === "alive" ? true : undefined,
    );
    await until("A's inbound peer again", async () =>
      (await peersOf(admA))[0]?.connectionState === "alive" ? true : undefined,
    );
  });

  test("refusals, as the daemon gives them and as hero-init reports them: a duplicate, an unknown peer, a malformed URI", async () => {
    const nobody = `tcp://127.0.0.1:${freePort()}`;
    expect(await admA("mycelium_addPeer", [nobody])).toBeNull();
    expect(await raw(a.api, "POST", nobody)).toEqual({
      status: 409,
      text: "A peer identified by that endpoint already exists",
    });
    expect(await outcome(admA("mycelium_addPeer", [nobody]))).toEqual({
      code: "control.invalid-params",
      message: `peer ${nobody} already exists`,
    });
    expect((await peersOf(admA)).map((p) => p.endpoint.addr.socket)).toContain(nobody.slice(6));
    expect(await admA("mycelium_removePeer", [nobody])).toBeNull();
    expect(await raw(a.api, "DELETE", nobody)).toEqual({
      status: 404,
      text: "A peer identified by that endpoint does not exist",
    });
    expect(await outcome(admA("mycelium_removePeer", [nobody]))).toEqual({
      code: "control.invalid-params",
      message: `no peer ${nobody}`,
    });
    const named = "tcp://host.example:9651";
    expect(await raw(a.api, "POST", named)).toEqual({
      status: 400,
      text: "failed to parse address: invalid socket address syntax",
    });
    expect(await outcome(admA("mycelium_addPeer", [named]))).toMatchObject({
      code: "control.invalid-params",
      message: expect.stringMatching(/^invalid peer URI "tcp:\/\/host\.example:9651": /),
    });
    expect(await raw(a.api, "POST", "udp://192.0.2.1:9651")).toEqual({
      status: 400,
      text: "protocol for endpoint is not supported",
    });
    expect(await raw(a.api, "DELETE", "192.0.2.1:9651")).toEqual({
      status: 400,
      text: "missing leading protocol identifier",
    });
  });

  test("hero-init's peer URI rule agrees with the daemon's parser (stricter only for port 0, leading zeros and a + sign)", async () => {
    const stricter = ["tcp://192.0.2.1:0", "tcp://192.0.2.1:09651", "vsock://+3:4"];
    const candidates = [
      ...["tcp://192.0.2.10:9651", "QUIC://[2001:DB8:0::10]:9651", "tls://[fe80::1%2]:1"],
      ...["Tcp://192.0.2.3:6", "tcp://[::ffff:192.0.2.4]:7", "vsock://2:9651", "tcp://[0001::1]:5"],
      ...["tcp://host.example:9651", "udp://192.0.2.1:9651", "192.0.2.1:9651", "tcp://192.0.2.1"],
      ...["tcp://192.0.2.1:65536", "tcp://01.2.3.4:9651", "tcp://256.1.1.1:9651", "tcp://::1:9651"],
      ...["tcp://[::1]", "tcp://[fe80::1%eth0]:9651", "tcp://[1.2.3.4]:9651", " tcp://192.0.2.1:1"],
      ...[
        "tcp://192.0.2.1:9651/",
        "vsock://x:1",
        "vsock://3",
        "",
        "tcp://[::1]:+5",
        "tcp://1.2.3.4:5 ",
      ],
      ...stricter,
    ];
    const differ: string[] = [];
    for (const uri of candidates) {
      const r = await raw(a.api, "POST", uri);
      if (r.status === 204) await raw(a.api, "DELETE", uri);
      expect([uri, r.status]).toEqual([uri, r.status === 204 ? 204 : 400]);
      if ((r.status === 204) !== isPeerUri(uri)) differ.push(uri);
    }
    expect(differ).toEqual(stricter);
    for (const uri of stricter) expect(isPeerUri(uri)).toBe(false);
  });

  test("`hero-init mycelium status|peers|add-peer|remove-peer` over a control socket to the real API", async () => {
    const sock = join(dir, "control.sock");
    const stopWatch = new AbortController();
    const status: MyceliumStatus = watchMycelium(
      a.api,
      "myc-none",
      () => {},
      200,
      stopWatch.signal,
    );
    const api = { mycelium: myceliumAdmin(a.api, () => status) } as unknown as ControlApi;
    const stop = startControlServer(api, [sock]);
    const cli = async (...args: string[]) => {
      const p = Bun.spawn([BUN, join(ROOT, "cli/main.ts"), "mycelium", ...args, "-s", sock], {
        stdout: "pipe",
        stderr: "pipe",
      });
      const [out, err, rc] = [await p.stdout.text(), await p.stderr.text(), await p.exited];
      return { rc, out, err };
    };
    try {
      await until("the watcher's first answer", async () => status.pubkey ?? undefined);
      const addr = addressOfKey(keyA);
      // --no-tun: the daemon answers, but no TUN carries the address, so hero-init keeps waiting.
      expect(await cli("status")).toEqual({
        rc: 0,
        out: `state: waiting\naddress: -\nsubnet: ${subnetOf(addr)}\npubkey: ${hex(publicKeyOf(keyA))}\nreason: ${addr} not usable on myc-none yet\n`,
        err: "",
      });
      const nobody = `tcp://127.0.0.1:${freePort()}`;
      expect(await cli("add-peer", nobody)).toEqual({ rc: 0, out: "", err: "" });
      expect(await cli("add-peer", nobody)).toEqual({
        rc: 1,
        out: "",
        err: `peer ${nobody} already exists\n`,
      });
      const peers = await cli("peers");
      expect(peers.rc).toBe(0);
      expect(peers.out).toMatch(/^tcp:\/\/\[::ffff:127\.0\.0\.1\]:\d+ inbound alive$/m);
      expect(peers.out).toMatch(new RegExp(`^${nobody} static (dead|connecting)$`, "m"));
      const json = await cli("peers", "--json");
      expect(stripCounters(JSON.parse(json.out))).toEqual(
        stripCounters(await getJson(a.api, "/peers")),
      );
      expect(await cli("remove-peer", nobody)).toEqual({ rc: 0, out: "", err: "" });
      expect(await cli("remove-peer", nobody)).toEqual({
        rc: 1,
        out: "",
        err: `no peer ${nobody}\n`,
      });
      const bad = await cli("add-peer", "tcp://host.example:9651");
      expect(bad.rc).toBe(1);
      expect(bad.err).toStartWith('invalid peer URI "tcp://host.example:9651"');
    } finally {
      stopWatch.abort();
      stop();
    }
  });
});

/** Peers without their state, counters and ages (they move between two reads), sorted. */
function stripCounters(peers: unknown): unknown {
  return (peers as Record<string, unknown>[])
    .map(
      ({
        connectionState: _s,
        txBytes: _t,
        rxBytes: _r,
        discovered: _d,
        lastConnected: _l,
        ...p
      }) => p,
    )
    .sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)));
}

/** Key names and value types of an object (what a client can rely on), sorted. */
const shape = (o: unknown) =>
  Object.entries(o as Record<string, unknown>)
    .map(([k, v]) => `${k}:${v === null ? "null" : typeof v}`)
    .sort();

/**
 * One scenario through the admin API (raw and through hero-init's client):
 * status, peers, add and remove with their refusals. The transcript holds
 * what a client observes; a peer's connection state is left out (it
 * changes with timing).
 */
async function scenario(d: Daemon, closed: string, extra: string): Promise<unknown[]> {
  const adm = myceliumAdmin(d.api, () => null);
  const t: unknown[] = [];
  const admin = await getJson(d.api, "");
  t.push(["status", shape(admin), addressFromAdmin(admin)]);
  const peers = async () => {
    const p = (await getJson(d.api, "/peers")) as unknown[];
    t.push(["peers", p.map(shape), stripCounters(p)]);
  };
  await peers();
  t.push(["add", await outcome(adm("mycelium_addPeer", [extra]))]);
  t.push([
    "add again",
    await outcome(adm("mycelium_addPeer", [extra])),
    await raw(d.api, "POST", extra),
  ]);
  await peers();
  for (const bad of ["tcp://host.example:9651", "udp://192.0.2.1:1", "192.0.2.1:1", "vsock://3"])
    t.push(["bad", bad, await raw(d.api, "POST", bad), await raw(d.api, "DELETE", bad)]);
  t.push([
    "bad via hero-init",
    await outcome(adm("mycelium_addPeer", ["tcp://host.example:9651"])),
  ]);
  t.push(["remove", await outcome(adm("mycelium_removePeer", [extra.toUpperCase()]))]);
  t.push([
    "remove again",
    await outcome(adm("mycelium_removePeer", [extra])),
    await raw(d.api, "DELETE", extra),
  ]);
  t.push(["remove closed", await outcome(adm("mycelium_removePeer", [closed]))]);
  await peers();
  return t;
}

describe("one admin scenario against the real daemon", () => {
  test("key → address, status, peers, add, remove and their refusals, raw and through hero-init's client", async () => {
    const key = writeKey("same");
    const closed = `tcp://127.0.0.1:${freePort()}`;
    const extra = `tcp://[::1]:${freePort()}`;
    const real = await startDaemon("same", [closed]);
    const fromReal = await scenario(real, closed, extra);
    const addr = addressOfKey(key);
    expect(fromReal[0]).toEqual([
      "status",
      ["nodeIp:string", "nodePubkey:string", "nodeStartTime:number", "nodeSubnet:string"],
      { address: addr, subnet: subnetOf(addr), pubkey: hex(publicKeyOf(key)) },
    ]);
    expect(fromReal[1]).toEqual([
      "peers",
      [
        [
          "connectionState:string",
          "discovered:number",
          "endpoint:object",
          "lastConnected:null",
          "rxBytes:number",
          "txBytes:number",
          "type:string",
        ],
      ],
      [{ endpoint: { proto: "tcp", addr: { socket: closed.slice(6) } }, type: "static" }],
    ]);
    expect(fromReal).toContainEqual([
      "add again",
      { code: "control.invalid-params", message: `peer ${extra} already exists` },
      { status: 409, text: "A peer identified by that endpoint already exists" },
    ]);
    expect(fromReal.at(-1)).toEqual(["peers", [], []]);
  });

  test("the command line, as the daemon takes it: a named peer stops it (exit 2), a missing key directory too (exit 1)", () => {
    const run = (cmd: string[]) => {
      const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe", timeout: 30_000 });
      return { rc: p.exitCode, err: p.stderr.toString() };
    };
    const named = [
      "--no-tun",
      "--api-addr",
      `127.0.0.1:${freePort()}`,
      "--peers",
      "tcp://host.example:9651",
    ];
    const realNamed = run([MYC, "-k", join(dir, "same.key"), ...named]);
    expect(realNamed.rc).toBe(2);
    expect(realNamed.err).toStartWith(
      "error: invalid value 'tcp://host.example:9651' for '--peers <STATIC_PEERS>...': failed to parse address: invalid socket address syntax",
    );
    const nodir = [
      "-k",
      join(dir, "no/such/dir/key.bin"),
      "--no-tun",
      "--api-addr",
      `127.0.0.1:${freePort()}`,
    ];
    const r = run([MYC, ...nodir]);
    expect(r.rc).toBe(1);
    expect(r.err).toContain("No such file or directory");
  });
});

/**
 * In a network namespace of its own (unshare -n): the daemon with its TUN,
 * hero-init's watcher (guest/mycelium/discover.ts) waiting for the address
 * on it, the TUN and routes as ip shows them, and how the daemon ends on
 * SIGTERM.
 */
function inNetns(key: string) {
  const watch = join(dir, "watch.ts");
  writeFileSync(
    watch,
    `import { watchMycelium } from ${JSON.stringify(join(ROOT, "guest/mycelium/discover.ts"))};
const ac = new AbortController();
const s = watchMycelium("127.0.0.1:8989", "myc-it", () => {}, 200, ac.signal);
const end = Date.now() + 30_000;
while (s.state !== "up" && Date.now() < end) await Bun.sleep(100);
ac.abort();
console.log(JSON.stringify(s));
`,
  );
  const daemon = MYC;
  const script = `set -u
ip link set lo up
${daemon} -k ${key} --tun-name myc-it --disable-peer-discovery --disable-quic --api-addr 127.0.0.1:8989 --jsonrpc-addr 127.0.0.1:8990 >${dir}/tun.log 2>&1 &
p=$!
echo "status $(${BUN} ${watch})"
echo "link $(ip -j link show dev myc-it)"
echo "addrs $(ip -j -6 addr show dev myc-it scope global)"
echo "routes $(ip -j -6 route show dev myc-it)"
kill -TERM $p; wait $p; echo "exit $?"
`;
  const p = Bun.spawnSync(["unshare", "-n", "bash", "-c", script], {
    stdout: "pipe",
    stderr: "pipe",
    timeout: 60_000,
  });
  const out = p.stdout.toString();
  const part = (name: string) => {
    const line = out.split("\n").find((x) => x.startsWith(`${name} `));
    if (!line) throw new Error(`no ${name} in the namespace's output:\n${out}\n${p.stderr}`);
    return line.slice(name.length + 1);
  };
  const l = (JSON.parse(part("link")) as { mtu: number; flags: string[] }[])[0];
  const a = (
    JSON.parse(part("addrs")) as { addr_info: { local: string; prefixlen: number }[] }[]
  )[0];
  return {
    status: JSON.parse(part("status")) as MyceliumStatus,
    mtu: l?.mtu,
    up: l?.flags.includes("UP"),
    // (ip -j lists an empty entry for each address its filter left out.)
    addresses: a?.addr_info.filter((i) => i.local).map((i) => `${i.local}/${i.prefixlen}`),
    routes: (JSON.parse(part("routes")) as { dst: string }[]).map((r) => r.dst).sort(),
    exit: part("exit"),
  };
}

describe("with its TUN, in a network namespace", () => {
  test("the real daemon puts the key's address /7 on the named TUN (MTU 1400); hero-init's watcher finds it up", () => {
    const key = writeKey("tun");
    const addr = addressOfKey(key);
    const real = inNetns(join(dir, "tun.key"));
    expect(real).toEqual({
      status: {
        state: "up",
        address: addr,
        subnet: subnetOf(addr),
        pubkey: hex(publicKeyOf(key)),
        reason: "",
      },
      mtu: 1400,
      up: true,
      addresses: [`${addr}/7`],
      routes: ["400::/7", "fe80::/64"],
      exit: "0",
    });
  });
});
