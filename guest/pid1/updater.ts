import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import type { UpdateHooks, UpdateResult } from "../../update/engine.ts";
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
  const ch = r.changes.map((c) => `${c.name} ${c.from ?? "-"} → ${c.to}`).join(", ");
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

export function startUpdater(
  cfg: UpdateConfig,
  sup: Supervisor,
  o: {
    selfUpdate?: UpdateHooks["selfUpdate"];
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

  const hooks: UpdateHooks = {
    async restart(names) {
      for (const n of names) {
        if (!sup.has(n)) continue;
        try {
          await sup.restart(n);
        } catch (e) {
          log.warn("update", `restart ${n}: ${describeError(e)}`);
        }
      }
    },
    async health(names) {
      const known = names.filter((n) => sup.has(n));
      if (!known.length) return [];
      await Bun.sleep(cfg.health_seconds * 1000);
      return known.filter((n) => {
        const s = sup.status(n);
        return !(s.oneshot ? s.state === "Success" : s.state === "Running");
      });
    },
    selfUpdate: o.selfUpdate,
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
