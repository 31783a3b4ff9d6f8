/**
 * Update benchmarks (`bun bench/run.ts update`), the real update code:
 *
 * 1. Bytes and requests of an unchanged poll and of one changed binary out
 *    of three, against `hero-init serve`; baseline: fetching every binary
 *    again (what an updater without a diff and conditional GET does).
 * 2. N simulated updaters (default 1000; `UPDATERS=`), each a runUpdate()
 *    with its own machine directory, converging on one new binary from one
 *    server, 100 at a time: wall time to converge and the server's CPU time
 *    (utime+stime from /proc). Servers: `dist/hero-init serve` and Debian's
 *    nginx with the documented config (the baseline), in the same run.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPublicKey, generateKey } from "../lib/minisign.ts";
import { nginxConfigFromDoc } from "../test/nginx-conf.ts";
import { freePort } from "../test/vm/qemu.ts";
import { runUpdate, type UpdateHooks } from "../update/engine.ts";
import { buildManifest, publishSigned } from "../update/publish.ts";
import { out, printRatios, ratio } from "./lib.ts";

const ROOT = join(import.meta.dir, "..");
const N = Number(process.env.UPDATERS ?? 1000);
const BATCH = 100;
const SIZE = 256 * 1024;
const tmp = mkdtempSync(join(tmpdir(), "hero-bench-upd-"));
const pub = join(tmp, "pub");
mkdirSync(pub);
const key = generateKey();
const keyLine = formatPublicKey(key).split("\n")[1] as string;
let version = 0;

function addBinary(name: string, v: string, fill: number) {
  mkdirSync(join(pub, "vm", name, v), { recursive: true });
  writeFileSync(join(pub, "vm", name, v, name), new Uint8Array(SIZE).fill(fill));
  writeFileSync(join(pub, "vm", name, "meta.toml"), `services = ["${name}"]\n`);
}
function publish(base: string) {
  const text = buildManifest(pub, {
    baseUrl: base,
    version: ++version,
    expires: new Date(Date.now() + 86400_000),
  });
  const data = new TextEncoder().encode(text);
  publishSigned(join(pub, "bootstrapper.toml"), data, key, "bench");
}
const hooks: UpdateHooks = { restart: async () => {}, health: async () => [], log: () => {} };

function machine(dir: string) {
  mkdirSync(join(dir, "etc"), { recursive: true });
  writeFileSync(join(dir, "etc/update.pub"), `${keyLine}\n`);
  return {
    pkgs: join(dir, "pkgs"),
    root: dir,
    stateDir: join(dir, "state"),
    keysFile: join(dir, "etc/update.pub"),
  };
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime + stime, in clock ticks (USER_HZ 100)
}

async function waitUp(url: string) {
  for (let i = 0; i < 200; i++) {
    try {
      await fetch(url, { method: "HEAD" });
      return;
    } catch {
      await Bun.sleep(50);
    }
  }
  throw new Error(`${url} does not answer`);
}

/** Starts a server on pub; returns its base URL, pid and a stop function. */
async function startHero() {
  const port = await freePort();
  const p = Bun.spawn(
    [join(ROOT, "dist/hero-init"), "serve", pub, "--listen", `127.0.0.1:${port}`],
    { stdout: "ignore", stderr: "ignore" },
  );
  const base = `http://127.0.0.1:${port}/`;
  await waitUp(base);
  return { base, pid: p.pid, stop: () => p.kill() };
}

async function startNginx() {
  const port = await freePort();
  const n = join(tmp, "nginx");
  mkdirSync(n, { recursive: true });
  writeFileSync(
    join(n, "nginx.conf"),
    nginxConfigFromDoc({ port, root: pub, prefix: n, accessLog: null, workerConnections: 1024 }),
  );
  const p = Bun.spawn(["nginx", "-c", join(n, "nginx.conf"), "-p", n, "-e", "stderr"], {
    stdout: "ignore",
    stderr: "ignore",
  });
  const base = `http://127.0.0.1:${port}/`;
  await waitUp(base);
  // The work is done by the worker: sum master and workers.
  const pids = () => [
    p.pid,
    ...new TextDecoder()
      .decode(Bun.spawnSync(["pgrep", "-P", String(p.pid)]).stdout)
      .trim()
      .split("\n")
      .filter(Boolean)
      .map(Number),
  ];
  return { base, pids, stop: () => p.kill() };
}

async function fleet(base: string, cpu: () => number, label: string) {
  // Every updater first converges on v1, then the timed part: one binary changes.
  rmSync(join(pub, "vm"), { recursive: true, force: true });
  for (const [i, n] of ["a", "b", "c"].entries()) addBinary(n, "1.0", i + 1);
  publish(base);
  const dirs = Array.from({ length: N }, (_, i) => machine(join(tmp, label, `m${i}`)));
  const src = (i: number) => ({
    manifestUrl: `${base}bootstrapper.toml`,
    role: "vm" as const,
    machineId: `m${i}`,
  });
  const runAll = async () => {
    let failed = 0;
    for (let i = 0; i < N; i += BATCH) {
      const rs = await Promise.all(
        dirs.slice(i, i + BATCH).map((d, j) => runUpdate(src(i + j), d, hooks)),
      );
      failed += rs.filter((r) => r.outcome !== "updated").length;
    }
    return failed;
  };
  const f0 = await runAll();
  if (f0) throw new Error(`${label}: ${f0} updaters did not install v1`);
  addBinary("b", "1.1", 9);
  publish(base);
  const c0 = cpu();
  const t0 = performance.now();
  const failed = await runAll();
  const secs = (performance.now() - t0) / 1000;
  const cpuS = cpu() - c0;
  if (failed) throw new Error(`${label}: ${failed} updaters did not converge`);
  out(`${label}: ${N} updaters converge on one changed binary (s)`, secs);
  out(`${label}: server CPU for it (s)`, cpuS);
  return { secs, cpuS };
}

try {
  // 1. Bytes and requests.
  const hero = await startHero();
  for (const [i, n] of ["a", "b", "c"].entries()) addBinary(n, "1.0", i + 1);
  publish(hero.base);
  const m = machine(join(tmp, "single"));
  const src = { manifestUrl: `${hero.base}bootstrapper.toml`, role: "vm" as const, machineId: "x" };
  const first = await runUpdate(src, m, hooks);
  const unchanged = await runUpdate(src, m, hooks);
  addBinary("b", "1.1", 9);
  publish(hero.base);
  const changed = await runUpdate(src, m, hooks);
  const manifestBytes = readFileSync(join(pub, "bootstrapper.toml")).length;
  const sigBytes = readFileSync(join(pub, "bootstrapper.toml.minisig")).length;
  const full = manifestBytes + sigBytes + 3 * SIZE;
  out("first install: requests", first.requests);
  out("first install: bytes", first.bytes);
  out("unchanged poll: requests", unchanged.requests);
  out("unchanged poll: bytes", unchanged.bytes);
  out("one of three binaries changed: requests", changed.requests);
  out("one of three binaries changed: bytes", changed.bytes);
  out("baseline (fetch everything again): requests", 5);
  out("baseline (fetch everything again): bytes", full);
  ratio("unchanged poll bytes / fetch-everything bytes", unchanged.bytes / full);
  ratio("one-changed bytes / fetch-everything bytes", changed.bytes / full);

  // 2. A fleet against one server: hero-init serve, then nginx (baseline).
  const h = await fleet(hero.base, () => cpuSeconds(hero.pid), "hero-init serve");
  hero.stop();
  const ng = await startNginx();
  const n = await fleet(ng.base, () => ng.pids().reduce((s, p) => s + cpuSeconds(p), 0), "nginx");
  ng.stop();
  ratio("fleet convergence time, hero-init serve / nginx", h.secs / n.secs);
  ratio("server CPU, hero-init serve / nginx", h.cpuS / Math.max(n.cpuS, 0.01));
  printRatios();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
