import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import type { UpdateHooks, UpdateResult } from "../../update/engine.ts";
import { sshdSteps } from "../../update/sshd.ts";
import { machineId as stateMachineId } from "../../update/state.ts";
import { controlError, RPC } from "../control/protocol.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";

const PKGS = LAYOUT.pkgs;

export type UpdateConfig = NonNullable<VmConfig["update"]>;

/** The updater as the UI and the control socket see it. */
export interface Updater {
  check(): Promise<UpdateResult>;
  apply(): Promise<UpdateResult>;
  rollback(): Promise<never>;
  last(): { at: string; result: UpdateResult } | null;
  stop(): void;
}

/** The machine id for rollout buckets (update/state.ts), warnings to the log. */
export function machineId(stateDir: string = LAYOUT.updateState): string {
  return stateMachineId(stateDir, (m) => log.warn("update", m));
}

/** Pure: the next wait, `interval` seconds ± `jitter` of it (ms). */
export function nextDelay(interval: number, jitter: number, random = Math.random): number {
  return Math.max(1, interval * (1 + jitter * (2 * random() - 1))) * 1000;
}

/** One line for logs and the UI. */
export function summary(r: UpdateResult): string {
  const v = r.manifestVersion !== undefined ? `manifest ${r.manifestVersion}: ` : "";
  const ch = [
    ...r.changes.map((c) => `${c.name} ${c.from ?? "-"} → ${c.to}`),
    // Config files and the environment's access section (update/config-files.ts, access.ts).
    ...(r.files?.changed ?? []),
    ...(r.access?.changed.length
      ? [`access (${r.access.env}): ${r.access.changed.length} files`]
      : []),
  ].join(", ");
  if (r.error) return `${v}${r.outcome}: ${r.error}`;
  return `${v}${r.outcome}${ch ? ` (${ch})` : ""}`;
}

/** The control socket's update_check / update_apply, over the updater once it exists. */
export function updateControl(
  updater: () => Updater | null,
): (method: string, params: unknown) => Promise<unknown> {
  return async (method) => {
    const u = updater();
    if (!u) throw controlError(RPC.METHOD_NOT_FOUND, "no [update] section in vm.toml");
    if (method === "update_check") return u.check();
    if (method === "update_apply") return u.apply();
    throw controlError(RPC.METHOD_NOT_FOUND, `Method not found: ${method}`);
  };
}

/**
 * systemd units the updater may restart (after the systemd hand-off): a
 * `[vm]` binary's service that is not a zinit service but a unit.
 */
export interface UnitControl {
  /** Restarts the unit; false when there is no such unit. */
  restart(name: string): Promise<boolean>;
  healthy(name: string): Promise<boolean>;
  /** Enables and starts (or disables and stops) the unit; false when there is no such unit. */
  enable(name: string, on: boolean): Promise<boolean>;
  /** Makes the running unit read its configuration again (`systemctl reload`); false when there is no such unit. */
  reload(name: string): Promise<boolean>;
}

/** The sshd unit of a systemd image (Debian's openssh-server; sshd.service is its alias). */
const SSH_UNIT = "ssh.service";

export function startUpdater(
  cfg: UpdateConfig,
  sup: Supervisor,
  o: {
    selfUpdate?: UpdateHooks["selfUpdate"];
    /** Services that are systemd units, restarted through systemctl. */
    units?: UnitControl;
    stateDir?: string;
    /** Where binaries go (tests): default /usr/lib/hero/pkgs under the real root. */
    pkgs?: string;
    root?: string;
    /** The first timer run waits for this (a self-update being confirmed). */
    notBefore?: Promise<void>;
  } = {},
): Updater {
  const stateDir = o.stateDir ?? LAYOUT.updateState;
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  // The config's key seeds the trusted key set; a signed rotation may replace it later.
  const keysFile = join(stateDir, "keys.pub");
  const id = machineId(stateDir);
  let running: Promise<UpdateResult> | null = null;
  let last: { at: string; result: UpdateResult } | null = null;
  let timer: Timer | undefined;

  /** Services restarted as systemd units in this run (their health is systemd's word). */
  const units = new Set<string>();
  const hooks: UpdateHooks = {
    async restart(names) {
      for (const n of names) {
        try {
          if (sup.has(n)) await sup.restart(n);
          else if (await o.units?.restart(n)) units.add(n);
        } catch (e) {
          log.warn("update", `restart ${n}: ${describeError(e)}`);
        }
      }
    },
    async health(names) {
      const known = names.filter((n) => sup.has(n) || units.has(n));
      if (!known.length) return [];
      await Bun.sleep(cfg.health_seconds * 1000);
      const bad: string[] = [];
      for (const n of known) {
        if (units.delete(n)) {
          if (!(await o.units?.healthy(n))) bad.push(n);
          continue;
        }
        const s = sup.status(n);
        if (!(s.oneshot ? s.state === "Success" : s.state === "Running")) bad.push(n);
      }
      return bad;
    },
    selfUpdate: o.selfUpdate,
    // The access section says whether sshd runs, and a changed drop-in is reloaded, not
    // restarted (update/sshd.ts). After the systemd hand-off the image's own sshd is a unit
    // (Debian: ssh.service), started by systemd before the first update check: a changed drop-in
    // gets `systemctl reload`, or the running sshd would keep the image's settings until the
    // next boot.
    async sshd(wanted, changed) {
      if (!sup.has("sshd")) {
        let unit = false;
        try {
          for (const step of sshdSteps(wanted, changed)) {
            if (step !== "reload")
              unit = (await o.units?.enable(SSH_UNIT, step === "start")) ?? false;
            else if (unit) await o.units?.reload(SSH_UNIT);
          }
        } catch (e) {
          log.warn("update", `access: ${describeError(e)}`);
          return;
        }
        if (wanted && !unit)
          log.warn("update", "access: sshd should run but there is no sshd service or ssh unit");
        return;
      }
      for (const step of sshdSteps(wanted, changed, sup.status("sshd").state === "Running")) {
        if (step === "start") sup.start("sshd");
        else if (step === "stop") await sup.stop("sshd");
        else sup.kill("sshd", "SIGHUP");
      }
    },
    // Removed users and revoked keys: their open sessions end now, not at their next login.
    async endSessions(users) {
      if (o.root) return; // a test's tree, not this machine: its uids are not this machine's users
      const { killUidProcesses } = await import("../../sys/processes.ts");
      for (const u of users)
        log.info(
          "update",
          `access: ended the sessions of ${u.name} (uid ${u.uid}): ${killUidProcesses(u.uid)} processes`,
        );
    },
    log: (m) => log.info("update", m),
  };

  const run = async (check: boolean): Promise<UpdateResult> => {
    await o.notBefore;
    if (running) return running;
    running = (async () => {
      // The engine (manifests, signatures, downloads) loads at the first check, not at boot.
      const { runUpdate } = await import("../../update/engine.ts");
      const result = await runUpdate(
        {
          manifestUrl: cfg.manifest,
          role: "vm",
          env: cfg.env,
          pins: cfg.pins,
          machineId: id,
        },
        { pkgs: o.pkgs ?? PKGS, root: o.root ?? "", stateDir, keysFile, seedKey: cfg.key },
        hooks,
        { check },
      );
      last = { at: new Date().toISOString(), result };
      const line = `${check ? "check" : "update"}: ${summary(result)}`;
      if (
        result.outcome === "refused" ||
        result.outcome === "failed" ||
        result.outcome === "rolled-back"
      )
        log.error("update", line);
      else log.info("update", line);
      return result;
    })().finally(() => {
      running = null;
    });
    return running;
  };

  const schedule = () => {
    if (cfg.interval === 0) return;
    timer = setTimeout(
      () => {
        run(false)
          .catch((e) => log.error("update", describeError(e)))
          .finally(schedule);
      },
      nextDelay(cfg.interval, cfg.jitter),
    );
  };
  void (o.notBefore ?? Promise.resolve()).then(schedule);
  log.info(
    "update",
    `following ${cfg.manifest}${cfg.env ? ` (${cfg.env})` : ""}; ${cfg.interval ? `every ${cfg.interval} s ± ${Math.round(cfg.jitter * 100)}%` : "on demand only"}`,
  );

  return {
    check: () => run(true),
    apply: () => run(false),
    rollback: () =>
      Promise.reject(
        new Error(
          "old versions are removed once an update is healthy: roll back by publishing the previous binaries in a manifest with a higher version",
        ),
      ),
    last: () => last,
    stop: () => clearTimeout(timer),
  };
}
