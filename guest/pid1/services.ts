/**
 * Starts supervision: the supervisor, the services of the config dir, the
 * control sockets and job mode. Used by PID 1 and by `hero-init init` (the
 * same, outside PID 1, for tests in a pid namespace and for containers).
 */

import { LAYOUT } from "../../lib/layout.ts";
import { consoleLine, log } from "../../lib/log.ts";
import { validateServiceSpec } from "../../lib/service-spec.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import { controlApi } from "../control/api.ts";
import { startControlServer } from "../control/server.ts";
import { myceliumAdmin } from "../mycelium/admin.ts";
import type { MyceliumStatus } from "../mycelium/discover.ts";
import { groupOf } from "../supervisor/cgroup.ts";
import { heroExitLine, jobExit, wasOomKilled } from "../supervisor/job.ts";
import { monitorDir, readServiceDir } from "../supervisor/load.ts";
import type { AdoptedProcess } from "../supervisor/process.ts";
import { createSupervisor, type Supervisor } from "../supervisor/supervisor.ts";
import {
  cleanUpJob,
  JOB_EXIT,
  JOB_SERVICE,
  type JobOutcome,
  prepareJob,
  runnerJobExit,
  shellJoin,
  watchSecret,
} from "./job-runner.ts";
import { onShutdown, type ShutdownKind } from "./shutdown.ts";

/** Options for supervision. */
export interface SupervisionOptions {
  config: VmConfig;
  sockets?: string[];
  configDir?: string;
  cgroups?: boolean;
  /** mycelium's live status (PID 1 fills it in once mycelium is watched). */
  mycelium?: () => MyceliumStatus | null;
  /** Asks for the machine (or the init process) to end. */
  power: (kind: ShutdownKind, reason: string) => void;
  /** Called with the job's outcome (job VMs): the guest agent's wait-exit. */
  onJobExit?: (o: JobOutcome) => void;
  /** Services to adopt from the previous hero-init (self-update). */
  adopt?: Map<string, AdoptedProcess>;
  /** The updater's control methods (update_check, update_apply), once it runs. */
  update?: (method: string, params: unknown) => Promise<unknown>;
}

/** A minimal openrpc document for rpc.discover (the methods hero-init serves). */
export function openrpc(): unknown {
  const methods = [
    "service_list",
    "service_status",
    "service_start",
    "service_stop",
    "service_restart",
    "service_monitor",
    "service_forget",
    "service_kill",
    "system_shutdown",
    "system_reboot",
    "service_create",
    "service_delete",
    "service_get",
    "service_stats",
    "stream_currentLogs",
    "stream_subscribeLogs",
    "mycelium_status",
    "mycelium_peers",
    "mycelium_addPeer",
    "mycelium_removePeer",
    "update_check",
    "update_apply",
  ];
  return {
    openrpc: "1.2.6",
    info: { title: "Zinit JSON-RPC API (hero-init)", version: "1.0.0" },
    methods: methods.map((name) => ({ name, params: [] })),
  };
}

/** Delay between a job's HERO-EXIT and the power-off (the host's wait-exit answer is on its way). */
export const JOB_EXIT_GRACE_MS = 1000;

/** Starts the supervisor and everything around it. */
export function startSupervision(o: SupervisionOptions): Supervisor {
  const dir = o.configDir ?? o.config.services.dir;
  const jobCfg = o.config.job;
  const runnerJob = jobCfg !== undefined && jobCfg.service === undefined;
  const job = jobCfg ? (jobCfg.service ?? JOB_SERVICE) : undefined;
  const endJob = (outcome: JobOutcome, name: string) => {
    consoleLine(heroExitLine(outcome.code, outcome.message));
    log.info("job", `${name} ended: code ${outcome.code} (${outcome.message}); powering off`);
    o.onJobExit?.(outcome);
    // A second for the agent's wait-exit answer to leave the VM before the power goes.
    setTimeout(() => o.power("poweroff", `job ${name} finished`), JOB_EXIT_GRACE_MS);
  };
  const sup = createSupervisor({
    ringSize: o.config.services.ring_size,
    env: o.config.env,
    cgroups: o.cgroups,
    adopt: o.adopt,
    onExit(svc, exit, pid) {
      if (svc.name !== job) return;
      if (runnerJob) {
        cleanUpJob(jobCfg);
        endJob(runnerJobExit(exit), svc.name);
        return;
      }
      const stderr = sup.ring
        .since(0, svc.name)
        .filter((l) => l.stream === "stderr")
        .map((l) => l.text);
      const oom =
        exit.signal === "SIGKILL" &&
        wasOomKilled(o.cgroups === false ? null : groupOf(svc.name), pid);
      const { code, message } = jobExit(exit, oom, stderr.length ? stderr.slice(-1) : [svc.reason]);
      if (exit.code === 127 || exit.code === 126)
        log.warn("job", `${svc.name}: ${stderr.at(-1) ?? svc.reason}`);
      endJob({ code, message }, svc.name);
    },
  });
  onShutdown(() => sup.shutdownAll());
  const api = controlApi(sup, dir, {
    shutdown: () => o.power("poweroff", "control socket: shutdown"),
    reboot: () => o.power("reboot", "control socket: reboot"),
  });
  if (o.update) api.update = o.update;
  api.mycelium = myceliumAdmin(o.config.mycelium?.api_addr ?? null, o.mycelium ?? (() => null));
  startControlServer(api, o.sockets ?? LAYOUT.zinitSockets, openrpc);
  if (jobCfg && runnerJob) {
    monitorDir(sup, dir);
    // Expiry, runner download and secret first; the job only starts if all are fine.
    void prepareJob(jobCfg, new Date()).then(
      (r) => {
        if ("code" in r) return endJob(r, JOB_SERVICE);
        try {
          sup.monitor(
            JOB_SERVICE,
            validateServiceSpec(
              {
                exec: shellJoin(r.argv),
                oneshot: true,
                log: "stdout",
                env: r.env,
                shutdown_timeout: jobCfg.stop_timeout,
                ...(jobCfg.uid !== 0 || jobCfg.gid !== 0
                  ? { uid: jobCfg.uid, gid: jobCfg.gid }
                  : {}),
              },
              "vm.toml [job]",
            ),
          );
          if (r.env.HERO_JOB_SECRET_FILE) watchSecret();
        } catch (e) {
          endJob({ code: JOB_EXIT.JOB_CONFIG, message: `job: ${String(e)}` }, JOB_SERVICE);
        }
      },
      (e) => endJob({ code: JOB_EXIT.CONFIG, message: `job: ${String(e)}` }, JOB_SERVICE),
    );
  } else if (job) {
    // The job runs once: treat it as a oneshot so it is never restarted.
    for (const l of readServiceDir(dir)) {
      if (l.name === job && "spec" in l) l.spec.oneshot = true;
      if ("error" in l) sup.addBroken(l.name, l.error);
      else sup.monitor(l.name, l.spec);
    }
    if (!sup.has(job)) log.error("job", `job service "${job}" has no service file in ${dir}`);
  } else {
    monitorDir(sup, dir);
  }
  return sup;
}
