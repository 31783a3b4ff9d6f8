/**
 * Starts supervision: the supervisor, the services of the config dir, the
 * control sockets (with mycelium's and the updater's methods) and job mode.
 * Used by PID 1 and by `hero-init init` (the same, outside PID 1, for tests
 * in a pid namespace and for containers).
 */
import { LAYOUT } from "../../lib/layout.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import { controlApi } from "../control/api.ts";
import { startControlServer } from "../control/server.ts";
import type { myceliumAdmin } from "../mycelium/admin.ts";
import type { MyceliumStatus } from "../mycelium/discover.ts";
import { monitorDir } from "../supervisor/load.ts";
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
  let admin: Promise<ReturnType<typeof myceliumAdmin>> | null = null;
  return async (method, params) => {
    admin ??= import("../mycelium/admin.ts").then(
      (m) => m.myceliumAdmin(...args),
      (e: unknown) => {
        admin = null;
        throw new Error(`cannot load the mycelium admin client: ${(e as Error)?.message ?? e}`);
      },
    );
    return (await admin)(method, params);
  };
}

/** Starts the supervisor and everything around it. */
export function startSupervision(o: SupervisionOptions): Supervisor {
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
  if (job) job.start(sup, dir);
  else monitorDir(sup, dir);
  return sup;
}
