/**
 * hero-init as systemd's unit (`hero-init unit`, started by the unit the
 * hand-off wrote, guest/pid1/systemd-handoff.ts): everything PID 1 runs
 * after READY (the supervisor of the zinit service files, the control
 * sockets, the UI, the agent, mycelium, the updater) without the machine's
 * parts, which are systemd's now:
 *  - config: vm.toml and the kernel's hero.* arguments, read again (no
 *    mounts, console, modules or network: done before the hand-off);
 *  - power: `zinit shutdown|reboot`, the agent and a job's end ask
 *    systemctl; the power button is logind's;
 *  - stop: SIGTERM from systemd stops the services in dependency order
 *    (the same stages as PID 1's shutdown), then the process exits 0;
 *  - orphans: a child subreaper, so a service's double-forked daemons come
 *    back to hero-init, not to systemd;
 *  - cgroups: the unit is delegated; hero-init moves itself to a leaf
 *    (`init`) so the service groups (`services/<name>`) can have
 *    controllers (cgroup v2's no-internal-process rule);
 *  - self-update: smoke test, the boot path switched to the new binary,
 *    then `systemctl restart hero-init.service` (a unit restart: the
 *    services restart with it).
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { LAYOUT } from "../../lib/layout.ts";
import { describeError, log } from "../../lib/log.ts";
import type { Change } from "../../lib/manifest.ts";
import { HERO_UNIT, heroInitUnits, unitName } from "../../lib/systemd-units.ts";
import { setChildSubreaper } from "../../sys/ffi.ts";
import { configStep } from "../boot/config.ts";
import type { BootStep } from "../boot/context.ts";
import { dhcpResumeStep } from "../boot/network.ts";
import { setCgroupRoot } from "../supervisor/cgroup.ts";
import { spawnOwned } from "../supervisor/process.ts";
import { scheduleReap } from "../supervisor/reaper.ts";
import { confirmBootBinary, smokeTest } from "./reexec.ts";
import { type ShutdownKind, shutdown } from "./shutdown.ts";
import { writeUnits } from "./systemd-handoff.ts";
import type { UnitControl } from "./updater.ts";

/** The unit's boot: the config, and the DHCP clients restarted without waiting (the machine was set up before the hand-off; the exec ended PID 1's clients). */
export const UNIT_STEPS: readonly BootStep[] = [configStep, dhcpResumeStep];

/**
 * Pure: from /proc/self/cgroup (v2: `0::/system.slice/hero-init.service`),
 * the leaf hero-init moves to and the root of the service groups; null
 * when there is no unified hierarchy line.
 */
export function delegatedGroups(
  procSelfCgroup: string,
  mount = "/sys/fs/cgroup",
): { self: string; services: string } | null {
  const line = procSelfCgroup.split("\n").find((l) => l.startsWith("0::/"));
  if (!line) return null;
  const unit = `${mount}${line.slice(3).replace(/\/$/, "")}`;
  return { self: `${unit}/init`, services: `${unit}/services` };
}

/** Moves this process into its leaf group and roots the service groups beside it. */
function enterDelegatedCgroup(): void {
  try {
    const g = delegatedGroups(readFileSync("/proc/self/cgroup", "utf8"));
    if (!g) throw new Error("no cgroup v2 line in /proc/self/cgroup");
    mkdirSync(g.self, { recursive: true });
    writeFileSync(`${g.self}/cgroup.procs`, String(process.pid));
    setCgroupRoot(g.services);
  } catch (e) {
    log.warn("systemd", `services stay in the unit's cgroup: ${describeError(e)}`);
  }
}

/** Runs systemctl (argv only); resolves with its exit code and output, or a spawn error as code null. */
export async function systemctl(args: string[]): Promise<{ code: number | null; out: string }> {
  try {
    const p = spawnOwned(["systemctl", ...args], { stdout: "pipe", stderr: "pipe" });
    const timer = setTimeout(() => p.kill("SIGKILL"), 120_000);
    const [code, out, err] = await Promise.all([
      p.exited,
      new Response(p.stdout as ReadableStream).text(),
      new Response(p.stderr as ReadableStream).text(),
    ]);
    clearTimeout(timer);
    return { code, out: `${out}${err}`.trim().slice(0, 2000) };
  } catch (e) {
    return { code: null, out: describeError(e) };
  }
}

/** Power requests (control socket, agent, a job's end) go to systemd. */
export function systemdPower(kind: ShutdownKind, reason: string): void {
  log.info("systemd", `${kind} (${reason}): asking systemd`);
  void systemctl(["--no-block", kind]).then((r) => {
    if (r.code !== 0) log.error("systemd", `systemctl ${kind}: ${r.out || `exit ${r.code}`}`);
  });
}

/** Stop from systemd: the services stop in order, then the process ends. */
function installUnitSignals(): void {
  const stop = (signal: string) =>
    shutdown("poweroff", `${signal} from systemd: stopping the services`)
      .catch((e) => log.error("systemd", describeError(e)))
      .finally(() => process.reallyExit(0));
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGCHLD", () => scheduleReap());
  setInterval(scheduleReap, 1000);
}

/** Everything the unit sets up before the supervisor starts. */
export function startUnit(): void {
  try {
    setChildSubreaper();
  } catch (e) {
    log.warn("systemd", `not a child subreaper: ${describeError(e)}`);
  }
  enterDelegatedCgroup();
  installUnitSignals();
}

/**
 * Restarts (and checks) systemd units for the updater: a `[vm]` binary's
 * service that is a unit. The name comes from the manifest: it must be a
 * plain unit name (unitName: no option, path or control character) before
 * systemctl sees it, after a `--`.
 */
export function unitControl(run: typeof systemctl = systemctl): UnitControl {
  const unitOf = (name: string) =>
    unitName(name.includes(".") ? name : `${name}.service`, "service");
  /** `systemctl VERB… -- UNIT` for a unit systemd knows (false for one it does not); throws when it fails. */
  const act = async (verb: string[], name: string) => {
    const unit = unitOf(name);
    if ((await run(["cat", "--", unit])).code !== 0) return false;
    const r = await run([...verb, "--", unit]);
    if (r.code !== 0)
      throw new Error(`systemctl ${verb.join(" ")} ${unit}: ${r.out || `exit ${r.code}`}`);
    return true;
  };
  return {
    restart: (name) => act(["restart"], name),
    async healthy(name) {
      return (await run(["is-active", "--quiet", "--", unitOf(name)])).code === 0;
    },
    reload: (name) => act(["reload"], name),
    enable: (name, on) => act([on ? "enable" : "disable", "--now"], name),
  };
}

/**
 * The updater's self-update hook under systemd: the new binary passes its
 * smoke test, becomes the boot path (and `current`), the unit is rewritten
 * for it and restarted. systemd stops this process (its services stop in
 * order) and starts the new binary; a binary that then fails to start is
 * restarted by systemd until its start limit (no automatic rollback).
 */
export function unitSelfUpdate() {
  return async (path: string, change: Change): Promise<void> => {
    await smokeTest(path);
    const { removeOtherVersions } = await import("../../update/engine.ts");
    confirmBootBinary(path, change.binary.version, removeOtherVersions);
    writeUnits(heroInitUnits({ binary: LAYOUT.heroInit }));
    const reload = await systemctl(["daemon-reload"]);
    if (reload.code !== 0) log.warn("systemd", `daemon-reload: ${reload.out}`);
    log.info(
      "systemd",
      `self-update to hero-init ${change.binary.version}: restarting ${HERO_UNIT}`,
    );
    const r = await systemctl(["--no-block", "restart", HERO_UNIT]);
    if (r.code !== 0)
      throw new Error(`systemctl restart ${HERO_UNIT}: ${r.out || `exit ${r.code}`}`);
  };
}
