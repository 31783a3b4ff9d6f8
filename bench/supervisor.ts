/**
 * Supervisor benchmarks on the host, with `dist/hero-init init` (the
 * supervisor outside PID 1; no VM):
 *   (a) crash → restarted latency: SIGKILL a `sleep 1000` service, poll its
 *       status until a new pid shows; 20 samples each with the default first
 *       restart delay (restart.delay = 100 ms) and with `delay: 0` (the
 *       mechanism itself);
 *   (b) 10,000 orphans reaped: hero-init vs Debian's tini (`tini -s`), each
 *       PID 1 of a fresh pid namespace (`unshare --pid --fork --mount-proc`),
 *       running the same generator; generator wall time and zombies left,
 *       counted inside the namespace; rounds interleaved;
 *   (c) `list` round trip with 200 services: the CLI (a new process each
 *       time) and one raw JSON-RPC service_list on a fresh connection;
 *   (d) RSS/PSS of the supervisor process with 10 services running.
 *
 * Run: node_modules/.bin/bun bench/supervisor.ts
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect } from "../guest/control/client.ts";
import { median, memOf, out, percentile, printRatios, ratio } from "./lib.ts";

const HERO = join(import.meta.dir, "../dist/hero-init");
const ORPHAN_ROUNDS = Number(process.env.BENCH_ORPHAN_ROUNDS ?? 5);
const ORPHANS = 10_000;

/** Processes this script started, killed on any exit. */
const live = new Set<ReturnType<typeof Bun.spawn>>();
process.on("exit", () => {
  for (const p of live) p.kill("SIGKILL");
});

type Client = Awaited<ReturnType<typeof connect>>;

/** A `hero-init init` daemon in a temp dir with the given service files. */
async function daemon(services: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "hero-bench-sup-"));
  const etc = join(dir, "etc");
  mkdirSync(etc);
  for (const [n, y] of Object.entries(services)) writeFileSync(join(etc, `${n}.yaml`), y);
  const sock = join(dir, "s.sock");
  const logFd = openSync(join(dir, "daemon.log"), "w");
  const p = Bun.spawn([HERO, "init", "-c", etc, "-s", sock], {
    stdin: "ignore",
    stdout: logFd,
    stderr: logFd,
  });
  closeSync(logFd);
  live.add(p);
  let client: Client | null = null;
  for (let i = 0; i < 400 && !client; i++) {
    if (p.exitCode !== null) throw new Error(`hero-init init exited (${p.exitCode})`);
    if (existsSync(sock)) client = await connect(sock).catch(() => null);
    if (!client) await Bun.sleep(25);
  }
  if (!client) throw new Error("hero-init init: no control socket after 10 s");
  const c = client;
  const call = (method: string, params: unknown[] = []) => c.call(method, params);
  return {
    sock,
    pid: p.pid,
    call,
    /** Waits until `n` services are Running. */
    async running(n: number, timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const l = (await call("service_list")) as Record<string, string>;
        if (Object.values(l).filter((s) => s === "Running").length >= n) return;
        if (Date.now() > end) throw new Error(`not ${n} services Running: ${JSON.stringify(l)}`);
        await Bun.sleep(50);
      }
    },
    /** SIGTERM (graceful: services are stopped), SIGKILL after 20 s; then kills any service left. */
    async stop() {
      const pids: number[] = [];
      try {
        for (const n of Object.keys((await call("service_list")) as object)) {
          const s = (await call("service_status", [n])) as { pid: number };
          if (s.pid > 0) pids.push(s.pid);
        }
      } catch {
        // daemon already gone
      }
      c.close();
      p.kill("SIGTERM");
      const code = await Promise.race([p.exited, Bun.sleep(20_000).then(() => null)]);
      if (code === null) {
        p.kill("SIGKILL");
        await p.exited;
      }
      live.delete(p);
      for (const pid of pids) {
        try {
          if (readFileSync(`/proc/${pid}/cmdline`, "latin1").startsWith("sleep\0")) {
            process.kill(pid, "SIGKILL");
          }
        } catch {
          // gone, as it should be
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** `hero-init -s SOCK --json status NAME` → pid (0 if not running). */
function cliPid(sock: string, name: string): number {
  const p = Bun.spawnSync([HERO, "-s", sock, "--json", "status", name], { stdout: "pipe" });
  if (p.exitCode !== 0) return 0;
  const s = JSON.parse(p.stdout.toString()) as { pid: number; state: string };
  return s.state === "Running" ? s.pid : 0;
}

/** (a) crash → restarted: 20 samples. */
async function restartLatency(label: string, yaml: string): Promise<number[]> {
  const d = await daemon({ victim: yaml });
  try {
    const samples: number[] = [];
    for (let i = 0; i < 20; i++) {
      let pid = 0;
      for (let j = 0; j < 200 && !pid; j++) {
        pid = cliPid(d.sock, "victim");
        if (!pid) await Bun.sleep(20);
      }
      if (!pid) throw new Error("victim not running");
      await Bun.sleep(50);
      const t0 = performance.now();
      process.kill(pid, "SIGKILL");
      // Poll with service_status on the open connection (what `status` sends; a CLI
      // process per poll would cost ~25 ms each and hide the mechanism).
      for (;;) {
        const s = (await d.call("service_status", ["victim"])) as { pid: number };
        if (s.pid > 0 && s.pid !== pid) break;
        if (performance.now() - t0 > 30_000) throw new Error("no restart within 30 s");
        await Bun.sleep(1);
      }
      samples.push(performance.now() - t0);
    }
    out(`restart_latency_${label}_median_ms`, median(samples));
    out(`restart_latency_${label}_p90_ms`, percentile(samples, 90));
    out(`restart_latency_${label}_min_ms`, Math.min(...samples));
    return samples;
  } finally {
    await d.stop();
  }
}

/**
 * (b) The generator: `(true &)` starts a child from a subshell that exits at
 * once, so each child ends up with PID 1 (as an orphan, or as a zombie
 * handed over). Prints its own wall time and the zombies in the namespace
 * right after it and 1 s later.
 */
const GEN = `n=${ORPHANS}
zombies() { grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l; }
t0=$(date +%s%N)
i=0; while [ $i -lt $n ]; do (true &); i=$((i+1)); done
t1=$(date +%s%N)
z0=$(zombies)
sleep 1
z1=$(zombies)
echo "ORPHANS gen_ms=$(( (t1 - t0) / 1000000 )) zombies_at_end=$z0 zombies_after_1s=$z1 pid=$$"
if [ "$1" = hero ]; then kill -TERM 1; fi
`;

interface OrphanRun {
  genMs: number;
  z0: number;
  z1: number;
}

async function orphanRun(pid1: string[]): Promise<OrphanRun> {
  const p = Bun.spawn(
    ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--", ...pid1],
    {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  live.add(p);
  const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
  const [o, e] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  clearTimeout(timer);
  live.delete(p);
  const m = /ORPHANS gen_ms=(\d+) zombies_at_end=(\d+) zombies_after_1s=(\d+)/.exec(o + e);
  if (!m) throw new Error(`${pid1.join(" ")}: no result\n${(o + e).slice(-2000)}`);
  return { genMs: Number(m[1]), z0: Number(m[2]), z1: Number(m[3]) };
}

async function orphans(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "hero-bench-orphans-"));
  try {
    const gen = join(dir, "gen.sh");
    writeFileSync(gen, GEN);
    const etc = join(dir, "etc");
    mkdirSync(etc);
    writeFileSync(join(etc, "gen.yaml"), `exec: sh ${gen} hero\noneshot: true\nlog: stdout\n`);
    const runs: Record<"hero" | "tini", OrphanRun[]> = { hero: [], tini: [] };
    const hero = () => orphanRun([HERO, "init", "-c", etc, "-s", join(dir, "s.sock")]);
    const tini = () => orphanRun(["tini", "-s", "--", "sh", gen, "tini"]);
    for (let i = 0; i < ORPHAN_ROUNDS; i++) {
      if (i % 2 === 0) {
        runs.tini.push(await tini());
        runs.hero.push(await hero());
      } else {
        runs.hero.push(await hero());
        runs.tini.push(await tini());
      }
    }
    out("orphans_rounds", ORPHAN_ROUNDS);
    for (const k of ["tini", "hero"] as const) {
      const r = runs[k];
      out(`orphans_10000_${k}_gen_median_s`, median(r.map((x) => x.genMs)) / 1000);
      out(`orphans_10000_${k}_gen_each_s`, r.map((x) => x.genMs / 1000).join(" "));
      out(`orphans_10000_${k}_zombies_at_end_max`, Math.max(...r.map((x) => x.z0)));
      out(`orphans_10000_${k}_zombies_after_1s_max`, Math.max(...r.map((x) => x.z1)));
    }
    ratio(
      "ratio_orphans_10000_gen_hero_vs_tini",
      median(runs.hero.map((x) => x.genMs)) / median(runs.tini.map((x) => x.genMs)),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One JSON-RPC request on a fresh connection; resolves with the reply. */
function rawRpc(sock: string, method: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let buf = "";
    c.on("data", (d) => {
      buf += d.toString();
      const nl = buf.indexOf("\n");
      if (nl >= 0) {
        c.destroy();
        resolve(JSON.parse(buf.slice(0, nl)));
      }
    });
    c.on("error", reject);
    c.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: [] })}\n`);
  });
}

/** (c) `list` with 200 services. */
async function listRoundTrip(): Promise<void> {
  const services: Record<string, string> = {};
  for (let i = 0; i < 200; i++) services[`s${String(i).padStart(3, "0")}`] = "exec: sleep 1000\n";
  const d = await daemon(services);
  try {
    await d.running(200);
    const cli: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      const p = Bun.spawnSync([HERO, "-s", d.sock, "list"], { stdout: "pipe" });
      cli.push(performance.now() - t0);
      if (p.exitCode !== 0 || p.stdout.toString().split("\n").length < 201)
        throw new Error(`list failed: ${p.stdout.toString().slice(0, 200)}`);
    }
    const raw: number[] = [];
    for (let i = 0; i < 50; i++) {
      const t0 = performance.now();
      const r = (await rawRpc(d.sock, "service_list")) as { result: object };
      raw.push(performance.now() - t0);
      if (Object.keys(r.result).length !== 200) throw new Error("service_list: not 200 services");
    }
    out("list_200_services_cli_median_ms", median(cli));
    out("list_200_services_cli_p90_ms", percentile(cli, 90));
    out("list_200_services_jsonrpc_median_ms", median(raw));
    out("list_200_services_jsonrpc_p90_ms", percentile(raw, 90));
  } finally {
    await d.stop();
  }
}

/** (d) Supervisor memory with 10 services. */
async function pss(): Promise<void> {
  const services: Record<string, string> = {};
  for (let i = 0; i < 10; i++) services[`s${i}`] = "exec: sleep 1000\n";
  const d = await daemon(services);
  try {
    await d.running(10);
    await Bun.sleep(2000);
    const m = memOf(d.pid);
    out("supervisor_10_services_rss_kb", m.rssKb);
    out("supervisor_10_services_pss_kb", m.pssKb);
  } finally {
    await d.stop();
  }
}

// reset_after: 0 makes every run "stable", so each sample is a FIRST restart (the delay
// would double otherwise); limit: 0 never gives up during the 20 kills.
await restartLatency("delay100", "exec: sleep 1000\nrestart:\n  reset_after: 0\n  limit: 0\n");
await restartLatency(
  "delay0",
  "exec: sleep 1000\nrestart:\n  delay: 0\n  reset_after: 0\n  limit: 0\n",
);
await listRoundTrip();
await pss();
await orphans();
printRatios();
