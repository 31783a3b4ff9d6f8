/**
 * Job VM benchmark (issue 21): jobs per minute on this machine through
 * runJobs (deploy from the minimal template, boot, job, exit record,
 * cleanup), N jobs at once against the same N one after another (the
 * baseline, measured in the same run), and the host memory of each job
 * VM: QEMU's peak RSS and PSS while the jobs run (sampled every 500 ms from
 * /proc/PID/smaps_rollup of the QEMUs whose console is in this run's
 * directory). Each job prints a line, sleeps BENCH_JOB_SECONDS and exits 0.
 *
 * Run: node_modules/.bin/bun bench/jobs.ts   (BENCH_JOBS=N, default 3;
 * BENCH_JOB_SECONDS, default 5; BENCH_MEM=MB per VM, default 512)
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JobRunOptions, runJobs } from "../host/job.ts";
import { ensureKernel } from "../host/kernel.ts";
import { median, memOf, out, printRatios, ratio } from "./lib.ts";

const N = Number(process.env.BENCH_JOBS ?? 3);
const SECONDS = Number(process.env.BENCH_JOB_SECONDS ?? 5);
const MEM = Number(process.env.BENCH_MEM ?? 512);
const kernel = await ensureKernel();
const dir = mkdtempSync(join(tmpdir(), "hero-bench-jobs-"));

/** QEMU pids whose command line names a console in `under`. */
function qemusUnder(under: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "latin1");
      if (cmd.startsWith("qemu-system") && cmd.includes(`path=${under}`)) pids.push(Number(p));
    } catch {
      // gone
    }
  }
  return pids;
}

/** Runs `n` jobs, `parallel` at once; the wall time and each QEMU's peak RSS/PSS (kB). */
async function round(name: string, n: number, parallel: number) {
  const base = join(dir, name);
  const list: JobRunOptions[] = Array.from({ length: n }, (_, i) => ({
    name: `${name}-${i + 1}`,
    out: join(base, `${name}-${i + 1}`),
    vm: { job: { command: ["sh", "-c", `echo bench job ${i + 1}; sleep ${SECONDS}; exit 0`] } },
    kernel,
    memMB: MEM,
    deadlineMs: 600_000,
  }));
  const peak = new Map<number, { rssKb: number; pssKb: number }>();
  const sampler = setInterval(() => {
    for (const pid of qemusUnder(base)) {
      try {
        const m = memOf(pid);
        const p = peak.get(pid) ?? { rssKb: 0, pssKb: 0 };
        peak.set(pid, { rssKb: Math.max(p.rssKb, m.rssKb), pssKb: Math.max(p.pssKb, m.pssKb) });
      } catch {
        // exited between the scan and the read
      }
    }
  }, 500);
  const t0 = performance.now();
  const records = await runJobs(list, parallel);
  const wallS = (performance.now() - t0) / 1000;
  clearInterval(sampler);
  const failed = records.filter((r) => r instanceof Error || r.code !== 0);
  if (failed.length)
    throw new Error(`${name}: ${failed.length} jobs failed: ${JSON.stringify(failed[0])}`);
  return { wallS, perMin: (n * 60) / wallS, peaks: [...peak.values()] };
}

try {
  const seq = await round("seq", N, 1);
  const par = await round("par", N, N);
  out("jobs", N);
  out("job_sleep_s", SECONDS);
  out("vm_mem_mb", MEM);
  out("sequential_wall_s", seq.wallS);
  out("sequential_jobs_per_min", seq.perMin);
  out(`parallel_${N}_wall_s`, par.wallS);
  out(`parallel_${N}_jobs_per_min`, par.perMin);
  out("qemu_peak_rss_mb_median", median(par.peaks.map((p) => p.rssKb / 1024)));
  out("qemu_peak_pss_mb_median", median(par.peaks.map((p) => p.pssKb / 1024)));
  out("qemu_sampled", par.peaks.length);
  ratio("parallel_vs_sequential_jobs_per_min", par.perMin / seq.perMin);
  ratio("qemu_peak_rss_vs_guest_mem", median(par.peaks.map((p) => p.rssKb / 1024)) / MEM);
  printRatios();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
