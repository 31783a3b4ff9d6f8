/**
 * Boot step 3: choose the console hero-init writes to. The kernel lists its
 * active consoles in /sys/class/tty/console/active (the last is
 * /dev/console); we prefer a virtio console (hvc0) when it is active, since
 * it is faster than the emulated UART, then ttyS0, then /dev/console.
 */
import { existsSync, readFileSync } from "node:fs";
import { log, useConsole, useKmsg } from "../../lib/log.ts";
import type { BootStep } from "./context.ts";

/** Picks the console device name from the `active` list (pure). */
export function chooseConsole(active: string, exists: (dev: string) => boolean): string {
  const names = active.split(/\s+/).filter(Boolean);
  for (const preferred of ["hvc0", "ttyS0"]) {
    if (names.includes(preferred) && exists(`/dev/${preferred}`)) return `/dev/${preferred}`;
  }
  return "/dev/console";
}

/** The console step. */
export const consoleStep: BootStep = {
  name: "console",
  run(ctx) {
    useKmsg();
    let active = "";
    try {
      active = readFileSync("/sys/class/tty/console/active", "utf8");
    } catch {
      // no sysfs: keep /dev/console
    }
    ctx.console = chooseConsole(active, existsSync);
    useConsole(ctx.console);
    log.info("console", `using ${ctx.console} (active: ${active.trim() || "unknown"})`);
  },
};
