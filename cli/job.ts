/**
 * `hero-init job run CONFIG`: deploys and boots ephemeral job VMs (one, or
 * `--count N` copies at once), waits for each job's code, writes each exit
 * record, removes each VM's disk and secrets (docs/jobs.md).
 *
 * The exit code is the job's (seed 004: 0 success, 1 token expired or
 * invalid, 2 runner download failed, 3 runner configuration error, 4 job
 * failed; a service job's own code), 124 when the deadline passed, 125 when
 * the VM ended without reporting, 64 a usage error, 70 when the host could
 * not deploy or start the VM. With several jobs: the first non-zero code.
 */
import { readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { defineCommand } from "citty";
import { runJobs } from "../host/job.ts";
import { DEFAULT_EXPIRY_CAP_MS, jobCopy } from "../host/job-plan.ts";
import { JOB_RUN_EXIT } from "../host/job-record.ts";
import { isHeroError } from "../lib/errors.ts";
import { parseToml } from "../lib/toml.ts";
import type { VmConfigInput } from "../lib/vm-config.ts";
import { readServiceDir } from "./host.ts";
import { type Command, usageError } from "./run.ts";

/** Pure: a positive number of seconds (or a count) from an option, or a usage error. */
export function positive(s: string, flag: string, integer = false, max = 7 * 86_400): number {
  const n = Number(s);
  if (!/^\d+(\.\d+)?$/.test(s.trim()) || !(n > 0) || n > max || (integer && !Number.isInteger(n)))
    throw usageError(
      `${flag}: expected ${integer ? "a whole number" : "seconds"} more than 0 and at most ${max}, got "${s}"`,
      flag,
    );
  return n;
}

/** Pure: the exit code for an error before a job booted (the same codes a guest would give). */
export function errorExit(e: Error): number {
  if (isHeroError(e, "input.job-token")) return 1;
  if (isHeroError(e, "input")) return 3;
  return JOB_RUN_EXIT.host;
}

const jobRun = defineCommand({
  meta: {
    name: "run",
    description:
      "run a job VM (or --count N at once): deploy, boot, wait for its code, write <out>/<name>/exit.json, remove its disk and secrets",
    notes:
      "Exit: the job's code (0 ok, 1 token expired/invalid, 2 runner download failed, 3 runner configuration error, 4 job failed),\n124 deadline passed, 125 the VM ended without reporting, 64 usage, 70 host failure. See docs/jobs.md.",
  },
  args: {
    config: {
      type: "positional",
      required: true,
      description: "the job VM's vm.toml (with [job])",
    },
    out: { type: "string", required: true, description: "directory for the jobs' deployments" },
    name: { type: "string", description: "the job's name (default: the config's file name)" },
    count: { type: "string", default: "1", description: "copies of the job to run" },
    parallel: { type: "string", description: "copies running at once (default: all)" },
    deadline: { type: "string", default: "3600", description: "seconds before the VM is stopped" },
    "stop-grace": {
      type: "string",
      default: "30",
      description: "seconds each stop step (agent shutdown, ACPI) gets before the next",
    },
    "job-secret": { type: "string", description: "file with the short-lived token" },
    services: { type: "string", description: "directory of zinit service files to add" },
    template: { type: "string", default: "minimal", description: "rootfs template" },
    mem: { type: "string", default: "512", description: "guest memory in MB" },
    "expiry-cap": {
      type: "string",
      default: String(DEFAULT_EXPIRY_CAP_MS / 1000),
      description: "longest a job token may live from now, in seconds",
    },
    keep: { type: "boolean", description: "keep the disk and secrets (debugging)" },
    kvm: { type: "boolean", description: "use KVM instead of TCG" },
    json: { type: "boolean", description: "print each exit record as one JSON line" },
  },
  async run({ args: a }) {
    const count = positive(a.count, "--count", true, 256);
    const parallel = a.parallel ? positive(a.parallel, "--parallel", true, 256) : count;
    const deadlineMs = positive(a.deadline, "--deadline") * 1000;
    const graceMs = positive(a["stop-grace"], "--stop-grace", false, 3600) * 1000;
    const capMs = positive(a["expiry-cap"], "--expiry-cap", false, 86_400) * 1000;
    const name = a.name ?? basename(a.config).replace(/\.toml$/, "");
    if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(name))
      throw usageError(`--name: 1-64 letters, digits, _ . - (got "${name}")`, "--name");
    let vm: VmConfigInput;
    try {
      vm = parseToml(readFileSync(a.config, "utf8"), a.config) as VmConfigInput;
    } catch (e) {
      process.stderr.write(`job run: ${String(e)}\n`);
      return errorExit(e as Error);
    }
    const secret = a["job-secret"] ? new Uint8Array(readFileSync(a["job-secret"])) : undefined;
    const services = a.services ? readServiceDir(a.services) : undefined;
    const list = Array.from({ length: count }, (_, i) => {
      const c = jobCopy(name, vm, i + 1, count);
      return {
        name: c.name,
        out: join(a.out, c.name),
        vm: c.vm,
        template: a.template,
        services,
        jobSecret: secret,
        deadlineMs,
        stepGraceMs: graceMs,
        memMB: positive(a.mem, "--mem", true, 65_536),
        accel: a.kvm ? ("kvm" as const) : ("tcg" as const),
        keep: a.keep,
        expiryCapMs: capMs,
        progress: a.json ? undefined : (m: string) => process.stderr.write(`${m}\n`),
      };
    });
    const results = await runJobs(list, parallel);
    let code = 0;
    results.forEach((r, i) => {
      const where = join(a.out, (list[i] as { name: string }).name);
      const c = r instanceof Error ? errorExit(r) : r.code;
      if (r instanceof Error) process.stderr.write(`job run: ${where}: ${String(r)}\n`);
      else if (a.json) process.stdout.write(`${JSON.stringify(r)}\n`);
      else process.stdout.write(`${r.name}: code ${r.code} (${r.message}); ${where}/exit.json\n`);
      if (code === 0) code = c;
    });
    return code;
  },
});

/** `hero-init job run`. */
export const job: Command = {
  meta: {
    name: "job",
    description: "ephemeral job VMs: run one job each, keep its exit record",
    usageExit: JOB_RUN_EXIT.usage,
  },
  subCommands: { run: jobRun },
};
