/**
 * Ephemeral job VMs (seed 004): `[job] runner`/`command` in vm.toml. PID 1
 * refuses an expired token, downloads the runner (sha256 and size checked),
 * moves the secret from the rootfs to /run (tmpfs, 0600, owned by the job's
 * uid) and deletes it as soon as the job has read it, runs the job once,
 * reports `HERO-EXIT code=<N> message="…"` on the console and to the agent's
 * wait-exit, and powers off. Exit codes (docs/agent.md):
 *
 *   0 the job succeeded         2 the runner could not be downloaded
 *   1 configuration error       3 job configuration error (secret, command)
 *     (incl. an expired token)  4 the job failed (message: its exit code)
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

/** The documented exit codes of a job VM. */
export const JOB_EXIT = {
  OK: 0,
  CONFIG: 1,
  DOWNLOAD: 2,
  JOB_CONFIG: 3,
  JOB_FAILED: 4,
} as const;

/** The supervised service a runner job runs as. */
export const JOB_SERVICE = "job";

export type JobConfig = NonNullable<VmConfig["job"]>;

/** A job outcome: what HERO-EXIT and wait-exit report. */
export interface JobOutcome {
  code: number;
  message: string;
}

/** Pure: checks the token's expiry against the clock fixed at boot. */
export function expiryProblem(job: JobConfig, now: Date): string | null {
  if (job.expires && job.expires.getTime() <= now.getTime())
    return `the job's token expired at ${job.expires.toISOString()} (now ${now.toISOString()}): nothing was run`;
  return null;
}

/** Pure: how a runner job's exit maps to the documented codes. */
export function runnerJobExit(exit: ExitInfo): JobOutcome {
  if (exit.signal) return { code: JOB_EXIT.JOB_FAILED, message: `job killed by ${exit.signal}` };
  if (exit.code === 0) return { code: JOB_EXIT.OK, message: "job succeeded" };
  if (exit.code === 126 || exit.code === 127)
    return {
      code: JOB_EXIT.JOB_CONFIG,
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

/**
 * Everything before the job runs. Resolves with the command to run, or the
 * outcome that ends the VM without running anything.
 */
export async function prepareJob(
  job: JobConfig,
  now: Date,
): Promise<{ argv: string[]; env: Record<string, string> } | JobOutcome> {
  const expired = expiryProblem(job, now);
  if (expired) return { code: JOB_EXIT.CONFIG, message: expired };
  let runnerPath: string | null = null;
  if (job.runner) {
    const r = job.runner;
    runnerPath = r.path;
    try {
      mkdirSync(dirname(r.path), { recursive: true, mode: 0o755 });
      const target = r.archive_member ? `${r.path}.archive` : r.path;
      log.info("job", `downloading the runner (${r.size} bytes)`);
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
    } catch (e) {
      return {
        code: JOB_EXIT.DOWNLOAD,
        message: `runner download failed: ${(e as Error).message}`,
      };
    }
  }
  const argv = job.command ?? (runnerPath ? [runnerPath] : []);
  const env: Record<string, string> = {};
  if (job.secret_file) {
    try {
      const secret = readFileSync(job.secret_file);
      mkdirSync(dirname(LAYOUT.jobSecret), { recursive: true, mode: 0o711 });
      replaceFile(LAYOUT.jobSecret, (tmp) => {
        writeFileSync(tmp, secret, { mode: 0o600 });
        chownSync(tmp, job.uid, job.gid);
        // relatime updates atime on the first read after a write: an old atime tells us when it was read.
        utimesSync(tmp, new Date(0), new Date());
      });
      // The copy on the rootfs is gone before the job starts: only /run holds it.
      rmSync(job.secret_file, { force: true });
      env.HERO_JOB_SECRET_FILE = LAYOUT.jobSecret;
    } catch (e) {
      return {
        code: JOB_EXIT.JOB_CONFIG,
        message: `job secret ${job.secret_file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      };
    }
  }
  return { argv, env };
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
      log.info("job", `secret deleted (${why})`);
    } catch (e) {
      log.warn("job", `cannot delete the secret: ${(e as Error).message}`);
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

/** After the job: the runner and any secret left behind are removed (never throws). */
export function cleanUpJob(job: JobConfig): void {
  for (const p of [LAYOUT.jobSecret, job.runner?.path, job.secret_file]) {
    if (!p || !existsSync(p)) continue;
    try {
      rmSync(p, { force: true });
      log.info("job", `cleanup: removed ${p}`);
    } catch (e) {
      log.warn("job", `cleanup of ${p}: ${(e as Error).message}`);
    }
  }
}
