/**
 * The boot sequence: one step per file, run in this order. A step that
 * throws is logged and the next one runs: a half-configured VM that answers
 * on its console is better than a kernel panic.
 */
import { readFileSync } from "node:fs";
import { describeError, log, uptime } from "../../lib/log.ts";
import { defaultVmConfig } from "../../lib/vm-config.ts";
import { virtioBlkPciCount, virtioDisks } from "./block.ts";
import { cmdlineParams } from "./cmdline.ts";
import { configStep } from "./config.ts";
import { consoleStep } from "./console.ts";
import type { BootContext, BootStep } from "./context.ts";
import { devlinksStep } from "./devlinks.ts";
import { hostnameStep } from "./hostname.ts";
import { modulesStep } from "./modules.ts";
import { mountsStep } from "./mounts.ts";
import { dhcpResumeStep, networkStep } from "./network.ts";
import { switchRootStep } from "./switchroot.ts";

/**
 * The config disk's step, loaded only on a machine with a virtio disk: an
 * initramfs VM without one pays a look at sysfs, not the module.
 */
const configDiskStep: BootStep = {
  name: "configdisk",
  async run(ctx) {
    if (virtioDisks().length === 0 && virtioBlkPciCount() === 0) return;
    await (await import("./config-disk.ts")).configDiskStep.run(ctx);
  },
};

/** The volumes step, loaded only when vm.toml has [[volumes]]. */
const volumesStep: BootStep = {
  name: "volumes",
  async run(ctx) {
    if (ctx.config.volumes.length === 0) return;
    await (await import("./volumes.ts")).volumesStep.run(ctx);
  },
};

/** The steps, in order. */
export const BOOT_STEPS: readonly BootStep[] = [
  mountsStep,
  devlinksStep,
  consoleStep,
  switchRootStep,
  configDiskStep,
  configStep,
  hostnameStep,
  modulesStep,
  volumesStep,
  networkStep,
];

/**
 * After a self-update re-exec the machine is up already (mounts, modules,
 * network, hostname): only the console and the config are read again, and
 * DHCP clients (which ended with the old process) start again.
 */
export const RESUME_STEPS: readonly BootStep[] = [consoleStep, configStep, dhcpResumeStep];

/** Runs every boot step and returns the context they built. */
export async function boot(steps: readonly BootStep[] = BOOT_STEPS): Promise<BootContext> {
  let cmdline = "";
  try {
    cmdline = readFileSync("/proc/cmdline", "utf8");
  } catch {
    // no /proc: the mounts step reports it
  }
  const ctx: BootContext = {
    cmdline: cmdlineParams(cmdline),
    config: defaultVmConfig(),
    configErrors: [],
    mounted: [],
    console: "/dev/console",
  };
  for (const step of steps) {
    const t0 = uptime();
    try {
      await step.run(ctx);
    } catch (e) {
      log.error(step.name, `step failed: ${describeError(e)}`);
    }
    log.info("boot", `step ${step.name} done in ${((uptime() - t0) * 1000).toFixed(0)} ms`);
  }
  return ctx;
}
