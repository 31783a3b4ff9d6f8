/**
 * Boot step 6: load the kernel modules the config lists, with their
 * dependencies from modules.dep, through finit_module(2). Compressed modules
 * (.ko.xz, .ko.zst) are handed to the kernel to decompress.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { isHeroError } from "../../lib/errors.ts";
import {
  BASE_MODULES,
  moduleName,
  parseModulesDep,
  planModules,
} from "../../lib/kernel-modules.ts";
import { log } from "../../lib/log.ts";
import { finitModule, MODULE_INIT_COMPRESSED_FILE } from "../../sys/ffi.ts";
import type { BootStep } from "./context.ts";

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return fallback;
  }
}

/** Loads `names` (and dependencies) from /lib/modules/<running kernel>. Returns what failed. */
export function loadModules(
  names: readonly string[],
  root = `/lib/modules/${release()}`,
): string[] {
  if (names.length === 0) return [];
  const dep = parseModulesDep(readOr(`${root}/modules.dep`, ""));
  const builtin = new Set(
    readOr(`${root}/modules.builtin`, "").split("\n").filter(Boolean).map(moduleName),
  );
  const loaded = new Set(
    readOr("/proc/modules", "")
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter(Boolean),
  );
  const plan = planModules(names, dep, builtin, loaded);
  const failed = [...plan.missing];
  for (const m of plan.missing) log.error("modules", `${m}: not found in ${root}/modules.dep`);
  for (const rel of plan.load) {
    const flags = /\.ko\.(xz|zst|gz)$/.test(rel) ? MODULE_INIT_COMPRESSED_FILE : 0;
    let fd = -1;
    try {
      fd = openSync(`${root}/${rel}`, "r");
      finitModule(fd, "", flags);
      log.info("modules", `loaded ${moduleName(rel)}`);
    } catch (e) {
      if (isHeroError(e, "sys.EEXIST")) continue;
      failed.push(moduleName(rel));
      log.error("modules", `${rel}: ${(e as Error).message}`);
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
  return failed;
}

/** The modules step. */
export const modulesStep: BootStep = {
  name: "modules",
  run(ctx) {
    const base = BASE_MODULES.filter((m) => !ctx.config.modules.includes(m));
    // Base modules are best effort (a rootfs may lack them); configured ones are reported.
    const dep = readOr(`/lib/modules/${release()}/modules.dep`, "");
    const available = parseModulesDep(dep);
    // mycelium needs /dev/net/tun before it starts.
    const extra = ctx.config.mycelium && !ctx.config.modules.includes("tun") ? ["tun"] : [];
    loadModules([...base.filter((m) => available.has(m)), ...ctx.config.modules, ...extra]);
  },
};
