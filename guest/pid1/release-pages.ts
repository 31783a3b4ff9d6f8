/**
 * After boot, PID 1 hands back the pages of its executable that boot used.
 *
 * Starting Bun and booting touch ~30 MiB of the executable's code and
 * constants (the parser, module loading, every boot step) that an idle PID 1
 * never runs again, and the kernel keeps them mapped (and maps more around
 * each fault). madvise(MADV_PAGEOUT) drops them from PID 1's page tables and
 * reclaims them; what is still used faults back in from the file. Only the
 * executable's read-only mappings are advised: their pages are clean copies
 * of the file. An executable in RAM (an initramfs: tmpfs or ramfs) is left
 * alone: the kernel would unmap its pages but cannot free them, so PID 1's
 * PSS would fall while the VM's memory stayed the same.
 */
import { readFileSync, readlinkSync, statfsSync } from "node:fs";
import { describeError, log } from "../../lib/log.ts";
import { readOnlyFileRanges } from "../../lib/proc-maps.ts";
import { MADV_PAGEOUT, madvise } from "../../sys/ffi.ts";

/** statfs(2) f_type of the filesystems whose pages live only in RAM. */
const IN_RAM: ReadonlyMap<number, string> = new Map([
  [0x01021994, "tmpfs"],
  [0x858458f6, "ramfs"],
]);

function pssMib(): string {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"));
  return m ? (Number(m[1]) / 1024).toFixed(1) : "?";
}

/** Pages out the executable's read-only mappings once; logs the process's PSS before and after (PID 1, or hero-init as systemd's unit). */
export function releaseBootPages(): void {
  try {
    const exe = readlinkSync("/proc/self/exe");
    const fs = IN_RAM.get(statfsSync("/proc/self/exe").type);
    if (fs) {
      log.info("memory", `boot pages kept: the executable is on ${fs}, in RAM either way`);
      return;
    }
    const ranges = readOnlyFileRanges(readFileSync("/proc/self/maps", "utf8"), exe);
    if (ranges.length === 0) {
      log.warn("memory", `boot pages not released: no read-only mapping of ${exe}`);
      return;
    }
    const before = pssMib();
    for (const r of ranges) madvise(r.start, r.length, MADV_PAGEOUT);
    log.info(
      "memory",
      `released the executable's boot pages (${ranges.length} mappings): PSS ${before} -> ${pssMib()} MiB`,
    );
  } catch (e) {
    log.warn("memory", `boot pages not released: ${describeError(e)}`);
  }
}
