/**
 * Boot step 6: load the kernel modules the config lists, with their
 * dependencies, through finit_module(2). Compressed modules (.ko.xz,
 * .ko.zst) are handed to the kernel to decompress.
 *
 * The order comes from the injector's load-order file (a few lines, see
 * lib/kernel-modules.ts) when it is for the running kernel and knows every
 * required name; else from the kernel's modules.dep (a hand-made image).
 * Modules load one after another: bun:ffi calls are synchronous on the one
 * JS thread, so concurrent finit_module calls would need threads or helper
 * processes, whose start costs more than the few modules take.
 */
import { closeSync, openSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { isHeroError } from "../../lib/errors.ts";
import {
  BASE_MODULES,
  loadOrderServes,
  type ModuleDep,
  moduleName,
  parseLoadOrder,
  parseModulesDep,
  planModules,
} from "../../lib/kernel-modules.ts";
import { LAYOUT } from "../../lib/layout.ts";
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

/** What modules exist: from the load-order file or from modules.dep + modules.builtin. */
interface ModuleIndex {
  dep: ModuleDep;
  builtin: ReadonlySet<string>;
  /** The file `dep` came from (for messages). */
  source: string;
}

/** The load-order file when it serves `required` on the running kernel, else modules.dep. */
function readIndex(root: string, required: readonly string[]): ModuleIndex {
  const orderFile = `${root}/${LAYOUT.moduleLoadOrder}`;
  const order = parseLoadOrder(readOr(orderFile, ""));
  if (loadOrderServes(order, release(), required))
    return { dep: order.dep, builtin: order.builtin, source: orderFile };
  return {
    dep: parseModulesDep(readOr(`${root}/modules.dep`, "")),
    builtin: new Set(
      readOr(`${root}/modules.builtin`, "").split("\n").filter(Boolean).map(moduleName),
    ),
    source: `${root}/modules.dep`,
  };
}

/**
 * Loads `names` (and dependencies) from /lib/modules/<running kernel>, and
 * those of `optional` the image has (best effort, loaded first). Returns what failed.
 */
export function loadModules(
  names: readonly string[],
  root = `/lib/modules/${release()}`,
  optional: readonly string[] = [],
): string[] {
  if (names.length === 0 && optional.length === 0) return [];
  const index = readIndex(root, names);
  const loaded = new Set(
    readOr("/proc/modules", "")
      .split("\n")
      .map((l) => l.split(" ")[0] ?? "")
      .filter(Boolean),
  );
  const present = optional.filter((m) => index.dep.has(moduleName(m)));
  const plan = planModules([...present, ...names], index.dep, index.builtin, loaded);
  const failed = [...plan.missing];
  for (const m of plan.missing) log.error("modules", `${m}: not found in ${index.source}`);
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
    // Base modules are best effort (a rootfs may lack them); configured ones are reported.
    const base = BASE_MODULES.filter((m) => !ctx.config.modules.includes(m));
    // mycelium needs /dev/net/tun before it starts.
    const extra = ctx.config.mycelium && !ctx.config.modules.includes("tun") ? ["tun"] : [];
    loadModules([...ctx.config.modules, ...extra], undefined, base);
  },
};
