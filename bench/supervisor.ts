/**
 * Supervisor benchmarks (host, `hero-init init`, no VM):
 *   - crash → restarted latency (first restart), with the default 100 ms
 *     restart delay and with delay 0 (the mechanism itself);
 *   - 10,000 orphans reaped: hero-init vs tini (Debian's), each as PID 1 of
 *     a fresh pid namespace, same generator, in the same run;
 *   - `list` round trip with 200 services (CLI process, and raw JSON-RPC);
 *   - PSS/RSS of the supervisor with 10 services running.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { median, memOf, out, percentile } from "./lib.ts";

const HERO = join(import.meta.dir, "../dist/hero-init");

async function daemon(services: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), "hero-bench-"));
  mkdirSync(join(dir, "etc"));
  for (const [n, y] of Object.entries(services)) writeFileSync(join(dir, "etc", `${n}.yaml`), y);
  const sock = join(dir, "s.sock");
  const p = Bun.spawn([HERO, "init", "-c", join(dir, "etc"), "-s", sock], {
    stdout: "ignore",
    stderr: "ignore",
  });
  for (let i = 0; i < 200 && !(await Bun.file(sock).exists()); i++) await Bun.sleep(25);
  return {
    sock,
    pid: p.pid,
    async stop() {
      p.kill("SIGTERM");
      await p.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function rpc(
  sock: string,
  method: string,
  params: unknown[] = [],
): Promise<{ result?: unknown; error?: unknown }> {
  return new Promise((resolve, reject) => {
    const c = createConnection(sock);
    let buf = "";
    c.on("data", (d) => {
      buf += d.toString();
      if (buf.includes("\n")) {
        c.destroy();
        resolve(JSON.parse(buf));
      }
    });
    c.on("error", reject);
    c.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method, params })}\n`);
  });
}

async function restartLatency(label: string, yaml: string): Promise<void> {
  const d = await daemon({ victim: yaml });
  const pidOf = async () =>
    ((await rpc(d.sock, "service_status", ["victim"])).result as { pid: number }).pid;
  const samples: number[] = [];
  for (let i = 0; i < 20; i++) {
    let pid = 0;
    for (let j = 0; j < 400 && !pid; j++) {
      pid = await pidOf();
      if (!pid) await Bun.sleep(5);
    }
    await Bun.sleep(50);
    const t0 = performance.now();
    process.kill(pid, "SIGKILL");
    for (let w = 0; ; w++) {
      const p = await pidOf();
      if (p && p !== pid) break;
      if (w > 20000) throw new Error("no restart within the time limit");
      await Bun.sleep(1);
    }
    samples.push(performance.now() - t0);
  }
  out(`restart_latency_${label}_median_ms`, median(samples));
  out(`restart_latency_${label}_p90_ms`, percentile(samples, 90));
  await d.stop();
}

// Orphans: a subshell starts a child and exits at once, so the child is reparented to PID 1.
const ORPHANS = `i=0; while [ $i -lt 10000 ]; do (true &) ; i=$((i+1)); done`;
const COUNT = `sleep 2; grep -l '^State:.Z' /proc/[0-9]*/status 2>/dev/null | wc -l`;

function orphanRun(label: string, pid1: string[]): number {
  const t0 = performance.now();
  const p = Bun.spawnSync(["unshare", "--pid", "--fork", "--mount-proc", "--", ...pid1], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const ms = performance.now() - t0;
  const zombies = Number(
    /ZOMBIES=(\d+)/.exec(p.stdout.toString() + p.stderr.toString())?.[1] ?? Number.NaN,
  );
  out(`orphans_10000_${label}_wall_s`, ms / 1000);
  out(`orphans_10000_${label}_zombies_left`, zombies);
  return ms;
}

async function orphans(): Promise<void> {
  const script = `${ORPHANS}; echo ZOMBIES=$(${COUNT})`;
  // tini as PID 1 (-s: also a subreaper), running the generator.
  const tini = orphanRun("tini", ["tini", "-s", "--", "sh", "-c", script]);
  // hero-init as PID 1 of the namespace in init mode, the generator as a oneshot that then shuts it down.
  const dir = mkdtempSync(join(tmpdir(), "hero-orphans-"));
  writeFileSync(
    join(dir, "gen.yaml"),
    `exec: sh -c "${script.replace(/"/g, '\\"')}; kill -TERM 1"\noneshot: true\nlog: stdout\n`,
  );
  const hero = orphanRun("hero", [HERO, "init", "-c", dir, "-s", join(dir, "s.sock")]);
  rmSync(dir, { recursive: true, force: true });
  out("orphans_10000_ratio_hero_vs_tini", hero / tini);
}

async function listRoundTrip(): Promise<void> {
  const services: Record<string, string> = {};
  for (let i = 0; i < 200; i++) services[`s${String(i).padStart(3, "0")}`] = "exec: sleep 1000\n";
  const d = await daemon(services);
  for (let i = 0; i < 200; i++) {
    const r = (await rpc(d.sock, "service_list")).result as Record<string, string>;
    if (Object.values(r).filter((s) => s === "Running").length === 200) break;
    await Bun.sleep(50);
  }
  const cli: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    Bun.spawnSync([HERO, "-s", d.sock, "list"], { stdout: "ignore" });
    cli.push(performance.now() - t0);
  }
  const raw: number[] = [];
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await rpc(d.sock, "service_list");
    raw.push(performance.now() - t0);
  }
  out("list_200_services_cli_median_ms", median(cli));
  out("list_200_services_jsonrpc_median_ms", median(raw));
  await d.stop();
}

async function pss(): Promise<void> {
  const services: Record<string, string> = {};
  for (let i = 0; i < 10; i++) services[`s${i}`] = "exec: sleep 1000\n";
  const d = await daemon(services);
  await Bun.sleep(2000);
  const m = memOf(d.pid);
  out("supervisor_10_services_rss_kb", m.rssKb);
  out("supervisor_10_services_pss_kb", m.pssKb);
  await d.stop();
}

// reset_after 0: every run counts as stable, so each sample is a FIRST restart (no backoff growth);
// limit 0: never give up during the 20 kills.
await restartLatency("delay100", "exec: sleep 1000\nrestart:\n  reset_after: 0\n  limit: 0\n");
await restartLatency(
  "delay0",
  "exec: sleep 1000\nrestart:\n  delay: 0\n  reset_after: 0\n  limit: 0\n",
);
await orphans();
await listRoundTrip();
await pss();
