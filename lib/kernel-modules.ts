/**
 * modules.dep resolution (pure): which files to load, in which order, for a
 * list of module names. Mirrors modprobe: dependencies first, each once.
 */

/** Canonical module name of a path or name: basename, no .ko[.xz|.zst|.gz], "-" → "_". */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.split("/").at(-1) ?? pathOrName;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

/** name → { path, deps (paths) } from modules.dep text. */
export function parseModulesDep(text: string): Map<string, { path: string; deps: string[] }> {
  const map = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    map.set(moduleName(path), { path, deps });
  }
  return map;
}

/** Result of resolving module names to an ordered list of files. */
export interface ModulePlan {
  /** Module files (relative to /lib/modules/<ver>) in load order. */
  load: string[];
  /** Names that are built into the kernel: nothing to load. */
  builtin: string[];
  /** Names found nowhere. */
  missing: string[];
}

/** Orders the files to load for `names`; skips names in `loaded` and `builtin`. */
export function planModules(
  names: readonly string[],
  dep: Map<string, { path: string; deps: string[] }>,
  builtin: ReadonlySet<string>,
  loaded: ReadonlySet<string>,
): ModulePlan {
  const plan: ModulePlan = { load: [], builtin: [], missing: [] };
  const seen = new Set<string>();
  const visit = (name: string, top: boolean) => {
    if (seen.has(name)) return;
    seen.add(name);
    if (loaded.has(name)) return;
    const entry = dep.get(name);
    if (!entry) {
      if (builtin.has(name)) {
        if (top) plan.builtin.push(name);
      } else plan.missing.push(name);
      return;
    }
    for (const d of entry.deps) visit(moduleName(d), false);
    plan.load.push(entry.path);
  };
  for (const n of names) visit(moduleName(n), true);
  return plan;
}

/** Modules hero-init itself needs when present: power button events. */
export const BASE_MODULES = ["button", "evdev"];

/**
 * Modules a virtio disk with ext4 needs (deps come from modules.dep).
 * crc32c_generic is not a dependency in modules.dep: ext4 asks the crypto
 * API for "crc32c" at mount time, which would need a modprobe helper.
 */
export const ROOT_MODULES = ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "overlay"];
