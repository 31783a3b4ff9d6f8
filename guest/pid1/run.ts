/**
 * PID 1: boot, then stay up forever. Installs the handlers that keep the
 * process alive (uncaught exceptions, rejections, a refused process.exit),
 * the signal handlers, the power button watcher and the orphan reaper, then
 * serves the UI and prints READY.
 */
import { hostname } from "node:os";
import { describeError, log, logHistory, uptime } from "../../lib/log.ts";
import { RB, reboot } from "../../sys/ffi.ts";
import type { BootContext } from "../boot/context.ts";
import { BOOT_STEPS, boot, RESUME_STEPS } from "../boot/index.ts";
import { type MyceliumStatus, watchMycelium } from "../mycelium/discover.ts";
import { startMycelium } from "../mycelium/service.ts";
import { scheduleReap } from "../supervisor/reaper.ts";
import { createApp } from "../ui/app.ts";
import { bindAddresses, type Listener, serveApp } from "../ui/serve.ts";
import { supervisorSource } from "../ui/source.ts";
import { createTerminals } from "../ui/terminal.ts";
import { watchPowerButton } from "./acpi.ts";
import { startAgent } from "./agent.ts";
import type { JobOutcome } from "./job-runner.ts";
import { adoptionMap, finishResume, loadHandoff, resumeFailed, selfUpdateHook } from "./reexec.ts";
import { type ShutdownKind, shutdown } from "./shutdown.ts";
import { startSupervision } from "./supervision.ts";
import { startUpdater, summary, type Updater, updateControl } from "./updater.ts";

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

/** Runs hero-init as PID 1. Never returns while the machine runs. */
export async function runPid1(): Promise<void> {
  guardProcess();
  const handoff = loadHandoff();
  const ctx = await boot(handoff ? RESUME_STEPS : BOOT_STEPS);
  installSignals();
  watchPowerButton(() => request("poweroff", "ACPI power button"));
  let mycelium: MyceliumStatus | null = null;
  let updater: Updater | null = null;
  let jobOutcome: JobOutcome | null = null;
  const jobWaiters: ((o: JobOutcome) => void)[] = [];
  const sup = startSupervision({
    onJobExit: (o) => {
      jobOutcome = o;
      for (const w of jobWaiters.splice(0)) w(o);
    },
    config: ctx.config,
    power: request,
    mycelium: () => mycelium,
    adopt: handoff ? adoptionMap(handoff) : undefined,
    update: updateControl(() => updater),
  });
  let resumed: Promise<void> | undefined;
  if (handoff) {
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
        selfUpdate: selfUpdateHook(sup),
        notBefore: resumed,
      });
    } catch (e) {
      log.error("update", `updater not started: ${describeError(e)}`);
    }
  }
  const ui = ctx.config.ui;
  const terminals = ui.terminal ? createTerminals() : null;
  const app = createApp({
    hostname: () => hostname(),
    uptime,
    allow: ui.allow,
    mycelium: () => mycelium,
    source: supervisorSource(sup, {
      hostname: () => hostname(),
      mycelium: () => mycelium,
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
      updater: updater ?? undefined,
    }),
    passwordHash: ui.password_hash,
    readonlyPasswordHash: ui.readonly_password_hash,
    terminals,
  });
  if (!ui.password_hash)
    log.info("ui", "no [ui] password_hash: the UI is read-only, loopback only");
  if (terminals) log.warn("ui", "debug web terminal enabled ([ui] terminal = true): admins only");
  const websocket = terminals?.websocket;
  serveApp(app, bindAddresses(ui.listen), ui.port, websocket);
  const bindAgent = startAgent(ctx.config.agent, {
    sup,
    power: (kind, reason) => request(kind, reason),
    jobExit: () => {
      if (!ctx.config.job) return null;
      return jobOutcome ?? new Promise<JobOutcome>((r) => jobWaiters.push(r));
    },
  });
  const m = ctx.config.mycelium;
  if (m) {
    // The UI answers on loopback at once, and on the overlay address as soon as it is usable.
    startMycelium(sup, m);
    let overlay: Listener[] = [];
    mycelium = watchMycelium(m.api_addr, m.tun_name, (address) => {
      for (const l of overlay) l.stop();
      overlay = serveApp(app, [address], ui.port, websocket);
      bindAgent?.(address);
    });
  }
  const now = uptime();
  log.info(
    "boot",
    `READY at ${now.toFixed(3)} s uptime; hero-init started at ${startedAt.toFixed(3)} s, ` +
      `pre-init exec'ed it at ${preinitExec.toFixed(3)} s; ${ctx.configErrors.length} config errors`,
  );
  injectFault(ctx);
}
