/**
 * Job mode (vm.toml [job]): the VM runs one job, reports its outcome (the
 * HERO-EXIT console line, the guest agent's wait-exit) and powers off. Two
 * kinds: a runner job ([job] without `service`: the runner is downloaded
 * and prepared by job-runner.ts, then supervised as the service "job") and a
 * service job (`service = "name"`: that service of the services directory,
 * run once).
 */
import { consoleLine, log } from "../../lib/log.ts";
import { validateServiceSpec } from "../../lib/service-spec.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import { groupOf } from "../supervisor/cgroup.ts";
import { heroExitLine, jobExit, wasOomKilled } from "../supervisor/job.ts";
import { monitorDir, readServiceDir } from "../supervisor/load.ts";
import type { ExitInfo } from "../supervisor/process.ts";
import type { Service, Supervisor } from "../supervisor/supervisor.ts";
import {
  cleanUpJob,
  JOB_EXIT,
  JOB_SERVICE,
  type JobConfig,
  type JobOutcome,
  jobLog,
  type PreparedJob,
  prepareJob,
  runnerJobExit,
  shellJoin,
  watchSecret,
} from "./job-runner.ts";
import type { ShutdownKind } from "./shutdown.ts";

/** Delay between a job's HERO-EXIT and the power-off (the host's wait-exit answer is on its way). */
const JOB_EXIT_GRACE_MS = 1000;

/** What job mode needs from the VM around it. */
export interface JobModeOptions {
  /** Without cgroups an OOM kill cannot be told from another SIGKILL. */
  cgroups?: boolean;
  /** Asks for the machine (or the init process) to end. */
  power: (kind: ShutdownKind, reason: string) => void;
  /** Called with the job's outcome: the guest agent's wait-exit. */
  onJobExit?: (o: JobOutcome) => void;
}

/** A VM's job: started with the services, ended (and the VM with it) when its service exits. */
export interface JobMode {
  /** The supervisor's onExit: ends the job when its service has exited. */
  onExit(sup: Supervisor, svc: Service, exit: ExitInfo, pid: number): void;
  /** Monitors the services directory and starts the job. */
  start(sup: Supervisor, dir: string): void;
}

type EndJob = (outcome: JobOutcome, name: string) => void;

/** The ending every job shares: HERO-EXIT on the console, wait-exit, power-off. */
function ender(o: JobModeOptions): EndJob {
  let ended = false;
  return (outcome, name) => {
    if (ended) return;
    ended = true;
    consoleLine(heroExitLine(outcome.code, outcome.message));
    jobLog("info", `${name} ended: code ${outcome.code} (${outcome.message}); powering off`);
    o.onJobExit?.(outcome);
    // A second for the agent's wait-exit answer to leave the VM before the power goes.
    setTimeout(() => o.power("poweroff", `job ${name} finished`), JOB_EXIT_GRACE_MS);
  };
}

/**
 * Job mode for a VM config: its `[job]`, or, when vm.toml had an invalid
 * `[job]`, a job that ends the VM at once with code 3 (a job VM that lost
 * its job must not run forever). Null for a VM without a job.
 */
export function jobModeFor(config: VmConfig, o: JobModeOptions): JobMode | null {
  if (config.job) return jobMode(config.job, o);
  const problem = config.jobError;
  if (problem === undefined) return null;
  const end = ender(o);
  return {
    onExit() {},
    start(sup, dir) {
      monitorDir(sup, dir);
      end({ code: JOB_EXIT.RUNNER_CONFIG, message: problem }, JOB_SERVICE);
    },
  };
}

/** Job mode for a VM whose config has `[job]`. */
function jobMode(cfg: JobConfig, o: JobModeOptions): JobMode {
  const runner = cfg.service === undefined;
  const job = cfg.service ?? JOB_SERVICE;
  const end = ender(o);
  const prepared: { job: PreparedJob | null } = { job: null };
  return {
    onExit(_sup, svc, exit, pid) {
      if (svc.name !== job) return;
      if (runner) {
        cleanUpJob(cfg);
        const oom = exit.signal === "SIGKILL" && wasOomKilled(cgroupOf(svc.name, o), pid);
        void finishRunnerJob(prepared.job, runnerJobExit(exit, oom)).then((r) => end(r, svc.name));
        return;
      }
      end(serviceJobOutcome(svc, exit, pid, o.cgroups !== false), svc.name);
    },
    start(sup, dir) {
      if (runner) startRunnerJob(sup, dir, cfg, end, prepared);
      else startServiceJob(sup, dir, job);
    },
  };
}

const cgroupOf = (name: string, o: JobModeOptions) => (o.cgroups !== false ? groupOf(name) : null);

/** After a runner job: the runner's registration is removed (a failure is said, the code kept). */
async function finishRunnerJob(p: PreparedJob | null, outcome: JobOutcome): Promise<JobOutcome> {
  if (!p?.registration) return outcome;
  const { removeRunner } = await import("./job-register.ts");
  const problem = await removeRunner(p.registration);
  if (problem === null) return outcome;
  jobLog("warn", `runner removal failed: ${problem}`);
  return { ...outcome, message: `${outcome.message}; runner removal failed: ${problem}` };
}

/** A service job's outcome: its exit, told apart from an OOM kill, with its last stderr line (kept on the record: the ring skips zinit's start markers and `log: stdout` lines). */
function serviceJobOutcome(
  svc: Service,
  exit: ExitInfo,
  pid: number,
  cgroups: boolean,
): JobOutcome {
  const last = svc.lastStderr;
  const oom = exit.signal === "SIGKILL" && wasOomKilled(cgroups ? groupOf(svc.name) : null, pid);
  const { code, message } = jobExit(exit, oom, [last ?? svc.reason]);
  if (exit.code === 127 || exit.code === 126) log.warn("job", `${svc.name}: ${last ?? svc.reason}`);
  return { code, message };
}

/**
 * A runner job: the services directory as usual; the job only starts once
 * its expiry, runner download and secret are fine, else the VM ends with
 * the reason.
 */
function startRunnerJob(
  sup: Supervisor,
  dir: string,
  cfg: JobConfig,
  end: EndJob,
  prepared: { job: PreparedJob | null },
): void {
  monitorDir(sup, dir);
  const fail = (outcome: JobOutcome) =>
    void finishRunnerJob(prepared.job, outcome).then((r) => end(r, JOB_SERVICE));
  void prepareJob(cfg, new Date()).then(
    (r) => {
      if ("code" in r) {
        // A registration made before the failure is still removed; the credential stays out of the outcome.
        if (r.registration) prepared.job = { argv: [], env: {}, registration: r.registration };
        return fail({ code: r.code, message: r.message });
      }
      prepared.job = r;
      jobLog("info", `starting the job: ${shellJoin(r.argv)}`);
      try {
        sup.monitor(
          JOB_SERVICE,
          validateServiceSpec(
            {
              exec: shellJoin(r.argv),
              oneshot: true,
              log: "stdout",
              env: r.env,
              dir: cfg.work_dir,
              shutdown_timeout: cfg.stop_timeout,
              ...(cfg.uid !== 0 || cfg.gid !== 0 ? { uid: cfg.uid, gid: cfg.gid } : {}),
            },
            "vm.toml [job]",
          ),
        );
        if (r.env.HERO_JOB_SECRET_FILE) watchSecret();
      } catch (e) {
        fail({ code: JOB_EXIT.RUNNER_CONFIG, message: `job: ${String(e)}` });
      }
    },
    (e) => fail({ code: JOB_EXIT.RUNNER_CONFIG, message: `job: ${String(e)}` }),
  );
}

/** A service job: the services directory, the job's service made a oneshot so it is never restarted. */
function startServiceJob(sup: Supervisor, dir: string, job: string): void {
  for (const l of readServiceDir(dir)) {
    if (l.name === job && "spec" in l) l.spec.oneshot = true;
    if ("error" in l) sup.addBroken(l.name, l.error);
    else sup.monitor(l.name, l.spec);
  }
  if (!sup.has(job)) log.error("job", `job service "${job}" has no service file in ${dir}`);
}
