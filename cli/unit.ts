/**
 * `hero-init unit`: hero-init as systemd's hero-init.service after the
 * systemd hand-off (guest/pid1/systemd-handoff.ts writes the unit that
 * runs it): the supervisor of the zinit service files, the control
 * sockets, the UI, the agent, mycelium and the updater, without the
 * machine's parts (those are systemd's). Only meaningful under systemd.
 */
import { defineCommand } from "citty";
import { type Command, usageError } from "./run.ts";

export const unit: Command = defineCommand({
  meta: {
    name: "unit",
    description:
      "run as hero-init.service under systemd after the hand-off (services, UI, agent, mycelium, updates)",
  },
  run: async () => {
    if (process.pid === 1) throw usageError("`unit` runs under systemd, not as PID 1");
    const { runPid1 } = await import("../guest/pid1/run.ts");
    await runPid1("unit");
    // Runs until systemd stops it: the SIGTERM handler stops the services and ends the process.
    return new Promise<number>(() => {});
  },
});
