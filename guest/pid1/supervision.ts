/**
 * Starts supervision: the supervisor, the services of the config dir, the
 * control sockets (with mycelium's and the updater's methods) and job mode.
 * Used by PID 1 and by `hero-init init` (the same, outside PID 1, for tests
 * in a pid namespace and for containers).
 */
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import { memoLoad } from "../../lib/memo-load.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import { controlApi } from "../control/api.ts";
import { startControlServer } from "../control/server.ts";
import type { myceliumAdmin } from "../mycelium/admin.ts";
import type { MyceliumStatus } from "../mycelium/discover.ts";
import { monitorDir, monitorDirGradually } from "../supervisor/load.ts";
import type { AdoptedProcess } from "../supervisor/process.ts";
import { createSupervisor, type Supervisor } from "../supervisor/supervisor.ts";
import { jobModeFor } from "./job-mode.ts";
import type { JobOutcome } from "./job-runner.ts";
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

/**
 * The `mycelium_*` control methods, loaded at their first call (not at
 * boot). A failed load fails that call (the control server answers the
 * error) and the next call tries again.
 */
function lazyMyceliumAdmin(
  ...args: Parameters<typeof myceliumAdmin>
): ReturnType<typeof myceliumAdmin> {
  const admin = memoLoad(() =>
    import("../mycelium/admin.ts").then(
      (m) => m.myceliumAdmin(...args),
      (e: unknown) => {
        throw new Error(`cannot load the mycelium admin client: ${(e as Error)?.message ?? e}`);
      },
    ),
  );
  return async (method, params) => (await admin())(method, params);
}

/** The supervisor, and the start of its services (once the caller is ready for them). */
export interface Supervision {
  sup: Supervisor;
  /**
   * Loads the service files of the config dir and starts them (or, in job
   * mode, starts the job). PID 1 calls it right after READY, as busybox init
   * runs its inittab entries after sysinit. One file per turn of the event
   * loop, or all at once with `gradual` false (a self-update's resume: the
   * services must all be adopted before anything looks at them). Resolves
   * once they are all started (never rejects); a second call returns the
   * first one's promise.
   */
  startServices(gradual?: boolean): Promise<void>;
}

/** Starts the supervisor and its control sockets; the services start with `startServices`. */
export function startSupervision(o: SupervisionOptions): Supervision {
  const dir = o.configDir ?? o.config.services.dir;
  const job = jobModeFor(o.config, o);
  const sup = createSupervisor({
    ringSize: o.config.services.ring_size,
    env: o.config.env,
    cgroups: o.cgroups,
    adopt: o.adopt,
    onExit: job ? (svc, exit, pid) => job.onExit(sup, svc, exit, pid) : undefined,
  });
  onShutdown(() => sup.shutdownAll());
  const api = controlApi(sup, dir, {
    shutdown: () => o.power("poweroff", "control socket: shutdown"),
    reboot: () => o.power("reboot", "control socket: reboot"),
  });
  if (o.update) api.update = o.update;
  api.mycelium = lazyMyceliumAdmin(o.config.mycelium?.api_addr ?? null, o.mycelium ?? (() => null));
  startControlServer(api, o.sockets ?? LAYOUT.zinitSockets);
  let started: Promise<void> | null = null;
  const load = (gradual: boolean): Promise<void> => {
    if (job) job.start(sup, dir);
    else if (!gradual) monitorDir(sup, dir);
    else
      return monitorDirGradually(sup, dir).then(
        () => {},
        (e) => log.error("supervisor", `loading ${dir}: ${describeError(e)}`),
      );
    return Promise.resolve();
  };
  return {
    sup,
    startServices(gradual = true) {
      started ??= load(gradual);
      return started;
    },
  };
}
