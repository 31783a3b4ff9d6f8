/**
 * modules.dep resolution (pure): which files to load, in which order, for a
 * list of module names. Mirrors modprobe: dependencies first, each once.
 */

/** Canonical module name of a path or name: basename, no .ko[.xz|.zst|.gz], "-" → "_". */
export function moduleName(pathOrName: string): string {
  const base = pathOrName.split("/").at(-1) ?? pathOrName;
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

/** A module file and the files it depends on (paths relative to /lib/modules/<ver>). */
export type ModuleDep = Map<string, { path: string; deps: string[] }>;

/** Adds one "path: dep dep…" line (modules.dep syntax) to `map`; other lines are ignored. */
function addDepLine(map: ModuleDep, line: string): void {
  const colon = line.indexOf(":");
  if (colon <= 0) return;
  const path = line.slice(0, colon).trim();
  const deps = line
    .slice(colon + 1)
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  map.set(moduleName(path), { path, deps });
}

/** name → { path, deps (paths) } from modules.dep text. */
export function parseModulesDep(text: string): ModuleDep {
  const map: ModuleDep = new Map();
  for (const line of text.split("\n")) addDepLine(map, line);
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
  dep: ModuleDep,
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

/**
 * The load-order file the injector writes next to modules.dep
 * (LAYOUT.moduleLoadOrder): the modules the image carries, dependencies
 * first, one "path: deps" line each (modules.dep syntax), and a
 * "builtin <name>" line for each requested name the kernel has built in.
 * The guest reads these few lines instead of the kernel's whole modules.dep
 * (hundreds of KB, ~0.7 s of cold JS under TCG). The first line names the
 * kernel version, so a file copied to another kernel's tree is not trusted.
 */
export const LOAD_ORDER_HEADER = "# hero-init module load order for kernel ";

/** A parsed load-order file. */
export interface LoadOrder {
  version: string;
  dep: ModuleDep;
  builtin: Set<string>;
}

/** The load-order file's text for `plan` (made from `dep` of kernel `version`). */
export function formatLoadOrder(version: string, plan: ModulePlan, dep: ModuleDep): string {
  const lines = [`${LOAD_ORDER_HEADER}${version}`];
  for (const path of plan.load) {
    const deps = dep.get(moduleName(path))?.deps ?? [];
    lines.push(deps.length ? `${path}: ${deps.join(" ")}` : `${path}:`);
  }
  for (const name of plan.builtin) lines.push(`builtin ${name}`);
  return `${lines.join("\n")}\n`;
}

/** Parses a load-order file; null when it does not start with the header. */
export function parseLoadOrder(text: string): LoadOrder | null {
  const lines = text.split("\n");
  const head = lines[0] ?? "";
  if (!head.startsWith(LOAD_ORDER_HEADER)) return null;
  const version = head.slice(LOAD_ORDER_HEADER.length).trim();
  if (!version) return null;
  const order: LoadOrder = { version, dep: new Map(), builtin: new Set() };
  for (const line of lines.slice(1)) {
    if (line.startsWith("builtin ")) order.builtin.add(moduleName(line.slice(8).trim()));
    else addDepLine(order.dep, line);
  }
  return order;
}

/**
 * Whether the load-order file can stand in for modules.dep: it is for the
 * running kernel and knows every required name (a module it lists or one
 * built in). Otherwise (a hand-made image, a vm.toml edited after injection,
 * another kernel) the caller reads the kernel's modules.dep.
 */
export function loadOrderServes(
  order: LoadOrder | null,
  runningKernel: string,
  required: readonly string[],
): order is LoadOrder {
  if (!order || order.version !== runningKernel) return false;
  return required.every((n) => {
    const name = moduleName(n);
    return order.dep.has(name) || order.builtin.has(name);
  });
}
