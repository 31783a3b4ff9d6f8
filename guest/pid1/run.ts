/**
 * PID 1: boot, then stay up forever. Installs the handlers that keep the
 * process alive (uncaught exceptions, rejections, a refused process.exit),
 * the signal handlers, the power button watcher and the orphan reaper, then
 * serves the UI, prints READY and starts the services.
 */
import { hostname } from "node:os";
import { describeError, log, logHistory, uptime } from "../../lib/log.ts";
import { RB, reboot } from "../../sys/ffi.ts";
import type { BootContext } from "../boot/context.ts";
import { BOOT_STEPS, boot, RESUME_STEPS } from "../boot/index.ts";
import type { MyceliumStatus } from "../mycelium/discover.ts";
import { scheduleReap } from "../supervisor/reaper.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { bindAddresses, type Fetcher, type Listener, lazyApp, serveApp } from "../ui/serve.ts";
import type { Terminals } from "../ui/terminal.ts";
import { watchPowerButton } from "./acpi.ts";
import { startAgent } from "./agent.ts";
import type { JobOutcome } from "./job-runner.ts";
import { adoptionMap, finishResume, loadHandoff, resumeFailed, selfUpdateHook } from "./reexec.ts";
import { type ShutdownKind, shutdown } from "./shutdown.ts";
import { startSupervision } from "./supervision.ts";
import { startUpdater, summary, type Updater, updateControl } from "./updater.ts";

/** How long after READY PID 1 pages out what boot used of its executable. */
const RELEASE_BOOT_PAGES_AFTER_MS = 3000;

/** Uptime when this program's first line ran (the end of the pre-init + Bun start). */
const startedAt = uptime();

function guardProcess(): void {
  process.on("uncaughtException", (err) =>
    log.error("pid1", `uncaught exception (survived): ${describeError(err)}`),
  );
  process.on("unhandledRejection", (err) =>
    log.error("pid1", `unhandled rejection (survived): ${describeError(err)}`),
  );
  // A library calling process.exit() would panic the kernel: refuse it.
  process.exit = ((code?: number) => {
    log.error(
      "pid1",
      `process.exit(${code ?? ""}) refused: PID 1 must not exit\n${new Error().stack ?? ""}`,
    );
  }) as typeof process.exit;
}

function request(kind: ShutdownKind, reason: string): void {
  shutdown(kind, reason).catch((e) => log.error("shutdown", describeError(e)));
}

function installSignals(): void {
  // With hard ctrl-alt-del disabled the kernel sends SIGINT to PID 1 instead of rebooting.
  try {
    reboot(RB.DISABLE_CAD);
  } catch (e) {
    log.warn("pid1", `cannot disable hard ctrl-alt-del: ${(e as Error).message}`);
  }
  process.on("SIGTERM", () => request("poweroff", "SIGTERM"));
  process.on("SIGINT", () => request("reboot", "ctrl-alt-del (SIGINT)"));
  process.on("SIGCHLD", () => scheduleReap());
  // Safety net: a lost SIGCHLD (coalesced while a scan ran) is caught within a second.
  setInterval(scheduleReap, 1000);
}

/**
 * When the pre-init exec'ed hero-init (seconds since boot; it stamps
 * HERO_PREINIT_EXEC). The variable is removed so services do not inherit it.
 * Without a pre-init, NaN: the task's start time would predate the
 * initramfs unpacking and mislead.
 */
function execUptime(): number {
  const v = process.env.HERO_PREINIT_EXEC;
  delete process.env.HERO_PREINIT_EXEC;
  return v && /^\d+\.\d{3}$/.test(v) ? Number(v) : Number.NaN;
}
const preinitExec = execUptime();

/**
 * Pure: the READY line (bench/boot.ts reads it). The pre-init's exec time
 * only when there was one: none for `hero-init unit` under systemd.
 */
export function readyLine(now: number, started: number, preinit: number, errors: number): string {
  const exec = Number.isNaN(preinit) ? "" : `, pre-init exec'ed it at ${preinit.toFixed(3)} s`;
  return `READY at ${now.toFixed(3)} s uptime; hero-init started at ${started.toFixed(3)} s${exec}; ${errors} config errors`;
}

/** Debug switch `hero.fault=uncaught|rejection|exit`: proves the guards in a real VM. */
function injectFault(ctx: BootContext): void {
  const fault = ctx.cmdline.get("hero.fault");
  if (fault === "uncaught")
    setTimeout(() => {
      throw new Error("fault injection: uncaught exception");
    }, 100);
  if (fault === "rejection")
    setTimeout(() => {
      Promise.reject(new Error("fault injection: unhandled rejection"));
    }, 100);
  if (fault === "exit") setTimeout(() => process.exit(3), 100);
}

/** The debug web terminal's manager; null (logged) when it cannot be loaded. */
async function loadTerminals(): Promise<Terminals | null> {
  try {
    return (await import("../ui/terminal.ts")).createTerminals();
  } catch (e) {
    log.error("ui", `web terminal not available: ${describeError(e)}`);
    return null;
  }
}

/**
 * The full UI app, built at the first request that is not /health
 * (lazyApp): its pages, assets and routes are not loaded at boot, nor for
 * probes. A failure here answers that request 503.
 */
async function buildUi(
  ctx: BootContext,
  sup: Supervisor,
  terminals: Terminals | null,
  mycelium: () => MyceliumStatus | null,
  updater: Updater | undefined,
): Promise<Fetcher> {
  const [{ createApp }, { supervisorSource }] = await Promise.all([
    import("../ui/app.ts"),
    import("../ui/source.ts"),
  ]);
  const ui = ctx.config.ui;
  return createApp({
    hostname: () => hostname(),
    uptime,
    allow: ui.allow,
    mycelium,
    source: supervisorSource(sup, {
      hostname: () => hostname(),
      mycelium,
      bootLog: logHistory,
      updates: () => {
        const l = updater?.last();
        return {
          manifest:
            l?.result.manifestVersion !== undefined
              ? { version: l.result.manifestVersion, env: ctx.config.update?.env }
              : null,
          lastCheck: l ? { at: l.at, result: summary(l.result) } : null,
        };
      },
      updater,
      identity: ctx.config.identity,
    }),
    passwordHash: ui.password_hash,
    readonlyPasswordHash: ui.readonly_password_hash,
    terminals,
    terminalAllow: ui.terminal_allow,
  });
}

/**
 * Starts mycelium (loaded only for a VM with [mycelium]) and watches for its
 * overlay address. A failed load is logged; the VM runs without it.
 */
async function startOverlay(
  sup: Supervisor,
  m: NonNullable<BootContext["config"]["mycelium"]>,
  onAddress: (address: string) => void,
): Promise<MyceliumStatus | null> {
  try {
    const [{ startMycelium }, { watchMycelium }] = await Promise.all([
      import("../mycelium/service.ts"),
      import("../mycelium/discover.ts"),
    ]);
    startMycelium(sup, m);
    return watchMycelium(m.api_addr, m.tun_name, onAddress);
  } catch (e) {
    log.error("mycelium", `not started: ${describeError(e)}`);
    return null;
  }
}

/**
 * Runs hero-init as PID 1, or (`mode` "unit") as systemd's unit after the
 * systemd hand-off: the same services without the machine's parts
 * (guest/pid1/systemd-unit.ts). Never returns while the machine runs.
 */
export async function runPid1(mode: "pid1" | "unit" = "pid1"): Promise<void> {
  guardProcess();
  const unit = mode === "unit" ? await import("./systemd-unit.ts") : null;
  const handoff = unit ? null : loadHandoff();
  const ctx = await boot(unit ? unit.UNIT_STEPS : handoff ? RESUME_STEPS : BOOT_STEPS);
  // vm.toml `init`: hand PID 1 to the image's systemd (returns only if hero-init stays PID 1).
  if (!unit && !handoff && ctx.config.init !== "hero")
    (await import("./systemd-handoff.ts")).handOffToSystemd(ctx.config);
  const power = unit ? unit.systemdPower : request;
  if (unit) unit.startUnit();
  else {
    installSignals();
    watchPowerButton(() => request("poweroff", "ACPI power button"));
  }
  let mycelium: MyceliumStatus | null = null;
  let updater: Updater | null = null;
  let jobOutcome: JobOutcome | null = null;
  const jobWaiters: ((o: JobOutcome) => void)[] = [];
  const { sup, startServices } = startSupervision({
    onJobExit: (o) => {
      jobOutcome = o;
      for (const w of jobWaiters.splice(0)) w(o);
    },
    config: ctx.config,
    power,
    mycelium: () => mycelium,
    adopt: handoff ? adoptionMap(handoff) : undefined,
    update: updateControl(() => updater),
  });
  let resumed: Promise<void> | undefined;
  if (handoff) {
    // The previous hero-init's services are all taken over at once, before anything looks at
    // them: a resume that fails at once hands back what the supervisor holds (resumeFailed).
    void startServices(false);
    try {
      // Debug switch: proves in a real VM that a failing new binary hands back to the old one.
      if (ctx.cmdline.get("hero.fault") === "resume" && handoff.direction === "forward")
        throw new Error("fault injection: resume");
      resumed = finishResume(handoff, sup);
    } catch (e) {
      resumeFailed(handoff, sup, e);
    }
  }
  if (ctx.config.update) {
    try {
      updater = startUpdater(ctx.config.update, sup, {
        selfUpdate: unit ? unit.unitSelfUpdate() : selfUpdateHook(sup),
        units: unit?.unitControl(),
        notBefore: resumed,
      });
    } catch (e) {
      log.error("update", `updater not started: ${describeError(e)}`);
    }
  }
  const ui = ctx.config.ui;
  const terminals = ui.terminal ? await loadTerminals() : null;
  const full = lazyApp(() => buildUi(ctx, sup, terminals, () => mycelium, updater ?? undefined));
  // The front answers /health and hands the rest to the full app (guest/ui/front.ts).
  const app = lazyApp(async () => {
    const { createFront } = await import("../ui/front.ts");
    const deps = { hostname: () => hostname(), uptime, mycelium: () => mycelium, allow: ui.allow };
    return createFront(deps, full);
  }, "front");
  if (!ui.password_hash)
    log.info("ui", "no [ui] password_hash: the UI is read-only, loopback only");
  if (terminals) log.warn("ui", "debug web terminal enabled ([ui] terminal = true): admins only");
  const websocket = terminals?.websocket;
  let overlay: Listener[] = [];
  serveApp(app, bindAddresses(ui.listen), ui.port, websocket);
  const bindAgent = startAgent(ctx.config.agent, {
    sup,
    power: (kind, reason) => power(kind, reason),
    jobExit: () => {
      if (!ctx.config.job && ctx.config.jobError === undefined) return null;
      return jobOutcome ?? new Promise<JobOutcome>((r) => jobWaiters.push(r));
    },
  });
  const m = ctx.config.mycelium;
  if (m) {
    // The UI answers on loopback at once, and on the overlay address as soon as it is usable.
    mycelium = await startOverlay(sup, m, (address) => {
      for (const l of overlay) l.stop();
      overlay = serveApp(app, [address], ui.port, websocket);
      bindAgent?.(address);
    });
  }
  log.info("boot", readyLine(uptime(), startedAt, preinitExec, ctx.configErrors.length));
  // The services start once PID 1 answers (control sockets, UI), as busybox init runs its
  // inittab entries after sysinit: their spawns (~10-20 ms each under TCG) do not hold up
  // /health, and the UI shows them coming up. The supervisor logs when they are all started.
  // The build may start the executable with raised JIT thresholds (scripts/build.sh,
  // --compile-jit-policy): boot code runs once and rarely repays compiling it. Once the
  // services are started, the code that runs is the code that runs again: the normal policy.
  void startServices().then(() => Bun.unsafe.setJITPolicy(1));
  // Boot's code is not run again: hand its pages back once the first requests after READY
  // (the deployer's /health, the overlay's start) have passed (release-pages.ts).
  setTimeout(() => {
    import("./release-pages.ts")
      .then((m) => m.releaseBootPages())
      .catch((e) => log.warn("memory", `boot pages not released: ${describeError(e)}`));
  }, RELEASE_BOOT_PAGES_AFTER_MS);
  injectFault(ctx);
}
