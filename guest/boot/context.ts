/** What the boot steps share: inputs read once, and what they set up. */
import type { HeroError } from "../../lib/errors.ts";
import type { VmConfig } from "../../lib/vm-config.ts";

/** State passed through the boot steps, in order. */
export interface BootContext {
  /** Parsed /proc/cmdline (key → value). */
  cmdline: Map<string, string>;
  /** The validated VM config (defaults where vm.toml was bad). */
  config: VmConfig;
  /** Problems found in vm.toml or the command line, already logged. */
  configErrors: HeroError[];
  /** Mount points hero-init mounted, in order, for unmounting in reverse at shutdown. */
  mounted: string[];
  /** The console device chosen for hero-init's output. */
  console: string;
}

/** One boot step: a name for the log and an action. A throw is logged, never fatal. */
export interface BootStep {
  name: string;
  run(ctx: BootContext): void | Promise<void>;
}
