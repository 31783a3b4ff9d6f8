/**
 * Ephemeral job VMs (seed 004): `[job] runner`/`command` in vm.toml. PID 1
 * refuses an expired token (or one whose expiry is beyond the cap),
 * downloads the runner (sha256 and size checked), registers the runner
 * with its CI service when `[job.registration]` says so (job-register.ts),
 * moves the secret from the rootfs to /run (tmpfs, 0600, owned by the
 * job's uid) and deletes it as soon as the job has read it, runs the job
 * once in its work_dir, reports `HERO-EXIT code=<N> message="…"` on the
 * console and to the agent's wait-exit, and powers off. Exit codes are
 * seed 004's (docs/jobs.md):
 *
 *   0 the job succeeded            3 runner configuration error ([job] invalid,
 *   1 token expired or invalid       secret, registration refused, command)
 *   2 the runner download failed   4 the job failed (message: its exit)
 */

import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { replaceFile } from "../../lib/atomic-file.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { log } from "../../lib/log.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import type { ExitInfo } from "../supervisor/process.ts";

/** The documented exit codes of a job VM (seed 004). */
export const JOB_EXIT = {
  OK: 0,
  TOKEN: 1,
  DOWNLOAD: 2,
  RUNNER_CONFIG: 3,
  JOB_FAILED: 4,
} as const;

/** The longest a job's token may live from boot: a config cannot ask for more (seed 004: one hour). */
export const JOB_EXPIRY_CAP_MS = 3600_000;

/** The supervised service a runner job runs as. */
export const JOB_SERVICE = "job";

export type JobConfig = NonNullable<VmConfig["job"]>;

/** A job outcome: what HERO-EXIT and wait-exit report. */
export interface JobOutcome {
  code: number;
  message: string;
}

/** What a prepared job runs, and the registration to remove after it. */
export interface PreparedJob {
  argv: string[];
  env: Record<string, string>;
  /** The runner's registration (removed after the job), if `[job.registration]`. */
  registration?: { url: string; id: string; credential: string };
}

/** The job's own log lines carry the wall-clock time (seed 004: "logs to stdout with timestamps"). */
export function jobLog(level: "info" | "warn" | "error", message: string): void {
  log[level]("job", `${new Date().toISOString()} ${message}`);
}

/** Pure: checks the token's expiry against the clock fixed at boot and the cap. */
export function expiryProblem(job: JobConfig, now: Date, capMs = JOB_EXPIRY_CAP_MS): string | null {
  if (!job.expires) return null;
  if (job.expires.getTime() <= now.getTime())
    return `the job's token expired at ${job.expires.toISOString()} (now ${now.toISOString()}): nothing was run`;
  if (job.expires.getTime() > now.getTime() + capMs)
    return `the job's token expires at ${job.expires.toISOString()}, more than ${capMs / 60_000} min after now (${now.toISOString()}): tokens are short-lived, nothing was run`;
  return null;
}

/** Pure: how a runner job's exit maps to the documented codes. */
export function runnerJobExit(exit: ExitInfo, oom = false): JobOutcome {
  if (exit.signal)
    return {
      code: JOB_EXIT.JOB_FAILED,
      message: `job killed by ${exit.signal}${oom ? " - OOM" : ""}`,
    };
  if (exit.code === 0) return { code: JOB_EXIT.OK, message: "job succeeded" };
  if (exit.code === 126 || exit.code === 127)
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: `job command could not run (exit ${exit.code}: ${exit.code === 127 ? "not found" : "not executable"})`,
    };
  return { code: JOB_EXIT.JOB_FAILED, message: `job exited ${exit.code}` };
}

/** Pure: shell-quoted argv for a zinit `exec` line. */
export function shellJoin(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_./=:@%+-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}

/** Pure: a URL for a log line: no user info, no query (a signed URL's token stays out of the log). */
export function urlForLog(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return "(unparsable URL)";
  }
}

async function downloadRunner(job: JobConfig): Promise<string | JobOutcome> {
  const r = job.runner as NonNullable<JobConfig["runner"]>;
  try {
    mkdirSync(dirname(r.path), { recursive: true, mode: 0o755 });
    const target = r.archive_member ? `${r.path}.archive` : r.path;
    jobLog("info", `downloading the runner from ${urlForLog(r.url)} (${r.size} bytes)`);
    // Loaded here: only a job with a runner needs the downloader and the tar reader.
    const [{ download }, { extractMember }] = await Promise.all([
      import("../../update/download.ts"),
      import("../../lib/tar.ts"),
    ]);
    await download(r.url, target, { expectSize: r.size, sha256: r.sha256 });
    if (r.archive_member) {
      const data = extractMember(readFileSync(target), r.archive_member, "runner archive");
      replaceFile(r.path, (tmp) => writeFileSync(tmp, data), { mode: 0o755 });
      rmSync(target, { force: true });
    }
    chmodSync(r.path, 0o755);
    chownSync(r.path, job.uid, job.gid);
    return r.path;
  } catch (e) {
    return { code: JOB_EXIT.DOWNLOAD, message: `runner download failed: ${(e as Error).message}` };
  }
}

/** The most a job's secret file may hold: a token, not a device or a disk's worth read into PID 1. */
const SECRET_MAX_BYTES = 64 * 1024;

/** The job's secret, read from the rootfs and deleted there (it then lives in PID 1's memory only). */
function takeSecret(job: JobConfig): Uint8Array | JobOutcome {
  const file = job.secret_file as string;
  try {
    const st = statSync(file);
    if (!st.isFile() || st.size > SECRET_MAX_BYTES)
      return {
        code: JOB_EXIT.RUNNER_CONFIG,
        message: `job secret ${file}: not a regular file of at most ${SECRET_MAX_BYTES} bytes: nothing was run`,
      };
    const secret = new Uint8Array(readFileSync(file));
    rmSync(file, { force: true });
    return secret;
  } catch (e) {
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: `job secret ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    };
  }
}

/** Writes the runtime secret 0600 for the job's uid, with an epoch atime (watchSecret sees the first read). */
function writeRuntimeSecret(job: JobConfig, data: Uint8Array): void {
  mkdirSync(dirname(LAYOUT.jobSecret), { recursive: true, mode: 0o711 });
  replaceFile(LAYOUT.jobSecret, (tmp) => {
    writeFileSync(tmp, data, { mode: 0o600 });
    chownSync(tmp, job.uid, job.gid);
    // relatime updates atime on the first read after a write: an old atime tells us when it was read.
    utimesSync(tmp, new Date(0), new Date());
  });
}

/** The job's working directory, owned by its uid (seed 004 work_dir). */
function makeWorkDir(job: JobConfig): JobOutcome | null {
  try {
    mkdirSync(job.work_dir, { recursive: true, mode: 0o700 });
    chownSync(job.work_dir, job.uid, job.gid);
    return null;
  } catch (e) {
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: `job work_dir ${job.work_dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    };
  }
}

/**
 * Everything before the job runs. Resolves with the command to run, or the
 * outcome that ends the VM without running anything.
 */
export async function prepareJob(
  job: JobConfig,
  now: Date,
): Promise<PreparedJob | (JobOutcome & Pick<PreparedJob, "registration">)> {
  jobLog("info", "preparing the job");
  const expired = expiryProblem(job, now);
  if (expired) return { code: JOB_EXIT.TOKEN, message: expired };
  let runnerPath: string | null = null;
  if (job.runner) {
    const got = await downloadRunner(job);
    if (typeof got !== "string") return got;
    runnerPath = got;
  }
  const bad = makeWorkDir(job);
  if (bad) return bad;
  const argv = job.command ?? (runnerPath ? [runnerPath] : []);
  const env: Record<string, string> = { HERO_JOB_WORK_DIR: job.work_dir };
  if (!job.secret_file) return { argv, env };
  const secret = takeSecret(job);
  if (!(secret instanceof Uint8Array)) return secret;
  let runtime = secret;
  let registration: PreparedJob["registration"];
  if (job.registration) {
    // Loaded here: only a registering job needs the registration client.
    const { registerRunner, runnerFile } = await import("./job-register.ts");
    const reg = await registerRunner(job.registration, new TextDecoder().decode(secret).trim());
    secret.fill(0);
    if ("code" in reg) return reg;
    registration = reg;
    runtime = new TextEncoder().encode(runnerFile(job.registration, reg));
    env.HERO_RUNNER_NAME = job.registration.runner_name;
  }
  try {
    writeRuntimeSecret(job, runtime);
  } catch (e) {
    return {
      code: JOB_EXIT.RUNNER_CONFIG,
      message: `job secret ${LAYOUT.jobSecret}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      ...(registration ? { registration } : {}),
    };
  }
  env.HERO_JOB_SECRET_FILE = LAYOUT.jobSecret;
  return { argv, env, ...(registration ? { registration } : {}) };
}

/**
 * Deletes the secret once the job has read it (its atime moves past the
 * epoch), or after `maxMs` whatever happened. Returns a stop function.
 */
export function watchSecret(maxMs = 30_000, path = LAYOUT.jobSecret): () => void {
  const t0 = Date.now();
  const remove = (why: string) => {
    clearInterval(timer);
    try {
      rmSync(path, { force: true });
      jobLog("info", `secret deleted (${why})`);
    } catch (e) {
      jobLog("warn", `cannot delete the secret: ${(e as Error).message}`);
    }
  };
  const timer = setInterval(() => {
    try {
      if (statSync(path).atimeMs > 0) remove("the job read it");
      else if (Date.now() - t0 > maxMs) remove(`not read within ${maxMs / 1000} s`);
    } catch {
      clearInterval(timer); // already gone
    }
  }, 50);
  return () => clearInterval(timer);
}

/** After the job: the runner, its work_dir and any secret left behind are removed (never throws). */
export function cleanUpJob(job: JobConfig): void {
  for (const p of [LAYOUT.jobSecret, job.runner?.path, job.secret_file, job.work_dir]) {
    if (!p || !existsSync(p)) continue;
    try {
      rmSync(p, { force: true, recursive: p === job.work_dir });
      jobLog("info", `cleanup: removed ${p}`);
    } catch (e) {
      jobLog("warn", `cleanup of ${p}: ${(e as Error).message}`);
    }
  }
}
