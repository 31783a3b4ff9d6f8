/**
 * The modules a path evaluates, found statically (pure: file texts in, a
 * set out). A bundler evaluates every static `import`/`export … from` of
 * every module it reaches, before the importer's first line; `import type`
 * is erased and `import()` runs only when reached. So the closure over
 * static value imports, from the modules a path enters, is exactly what the
 * path pays for at start (no timing, no binary needed). Modules outside the
 * repository are named `npm:<specifier>`; node: builtins are counted under
 * their own name (several are large JavaScript modules in Bun: node:crypto
 * costs 3.7 ms to load on the host, a few hundred ms under TCG); `bun` and
 * bun: builtins are native and not counted.
 */
import { dirname, join, normalize } from "node:path";

/** `import … from "x"`, `import "x"`, `export … from "x"` at the start of a statement. */
const STATIC =
  /(?:^|[\n;])[ \t]*(?:import|export)[ \t]+(type[ \t]+)?(?:[^"'`;]*?\sfrom\s*)?["']([^"']+)["']/g;

/** The specifiers one module evaluates statically (type-only imports left out). */
export function staticImports(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(STATIC)) if (!m[1] && m[2]) out.push(m[2]);
  return out;
}

/** A module's repo-relative path, `npm:<spec>`, `node:<name>`, or null for bun's builtins. */
function resolve(from: string, spec: string): string | null {
  if (spec.startsWith(".")) return normalize(join(dirname(from), spec));
  if (spec.startsWith("node:")) return spec;
  if (spec === "bun" || spec.startsWith("bun:")) return null;
  return `npm:${spec}`;
}

/**
 * Every module evaluated from `entries`, each with the chain of imports
 * that pulled it in (entry first). `read` gives a repo file's text, or
 * undefined when it does not exist; only .ts files are parsed (assets and
 * package.json are leaves).
 */
export function loadedModules(
  entries: readonly string[],
  read: (path: string) => string | undefined,
): Map<string, string[]> {
  const chains = new Map<string, string[]>(entries.map((e) => [e, [e]]));
  const queue = [...entries];
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (!file.endsWith(".ts")) continue;
    const text = read(file);
    if (text === undefined) throw new Error(`${file}: imported but not found`);
    for (const spec of staticImports(text)) {
      const target = resolve(file, spec);
      if (target === null || chains.has(target)) continue;
      chains.set(target, [...(chains.get(file) ?? [file]), target]);
      queue.push(target);
    }
  }
  return chains;
}

/**
 * Compares what is loaded with what is allowed: one line per module that
 * joined (with the chain that pulled it in) and per allowed module no
 * longer loaded (so the list stays exact).
 */
export function compareLoaded(
  loaded: Map<string, string[]>,
  allowed: readonly string[],
  what: string,
): string[] {
  const out: string[] = [];
  for (const [mod, chain] of loaded)
    if (!allowed.includes(mod))
      out.push(`${mod} is now evaluated ${what}, pulled in by: ${chain.join(" → ")}`);
  for (const mod of allowed)
    if (!loaded.has(mod))
      out.push(`${mod} is no longer evaluated ${what}: remove it from the list`);
  return out;
}
