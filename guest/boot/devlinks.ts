/** Boot step 2: /dev/fd and /dev/std* links, which devtmpfs does not create. */
import { symlinkSync } from "node:fs";
import { log } from "../../lib/log.ts";
import type { BootStep } from "./context.ts";

/** The links, as [path, target]. */
export const DEV_LINKS: readonly [string, string][] = [
  ["/dev/fd", "/proc/self/fd"],
  ["/dev/stdin", "/proc/self/fd/0"],
  ["/dev/stdout", "/proc/self/fd/1"],
  ["/dev/stderr", "/proc/self/fd/2"],
  ["/dev/core", "/proc/kcore"],
];

/** The devlinks step. */
export const devlinksStep: BootStep = {
  name: "devlinks",
  run() {
    for (const [path, target] of DEV_LINKS) {
      try {
        symlinkSync(target, path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST")
          log.warn("devlinks", `${path}: ${(e as Error).message}`);
      }
    }
  },
};
