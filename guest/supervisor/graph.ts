/**
 * The dependency graph of services (`after:`), pure: cycles, readiness of a
 * service's dependencies, and the shutdown order.
 */
import { type State, satisfiesDependents } from "./state.ts";

/** name → names it must start after. */
export type Deps = ReadonlyMap<string, readonly string[]>;

/** Every dependency cycle (Tarjan's strongly connected components), each sorted. */
export function findCycles(deps: Deps): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of deps.get(v) ?? []) {
      if (!deps.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v) as number, idx.get(w) as number));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (deps.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of [...deps.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** What a service waits for: missing (undefined) deps and deps not yet ready. */
export function unmetDeps(
  after: readonly string[],
  lookup: (name: string) => { state: State; oneshot: boolean } | undefined,
): { missing: string[]; waiting: string[] } {
  const missing: string[] = [];
  const waiting: string[] = [];
  for (const d of after) {
    const s = lookup(d);
    if (!s) missing.push(d);
    else if (!satisfiesDependents(s.state, s.oneshot)) waiting.push(d);
  }
  return { missing, waiting };
}

/**
 * Shutdown order: waves of services; each wave only contains services no
 * remaining service depends on, so dependents stop before their
 * dependencies. Cycle members end up together in the last wave.
 */
export function stopWaves(deps: Deps): string[][] {
  const left = new Set(deps.keys());
  const waves: string[][] = [];
  while (left.size) {
    const needed = new Set<string>();
    for (const n of left)
      for (const d of deps.get(n) ?? []) if (left.has(d) && d !== n) needed.add(d);
    let wave = [...left].filter((n) => !needed.has(n));
    if (wave.length === 0) wave = [...left]; // a cycle: stop them together
    wave.sort();
    for (const n of wave) left.delete(n);
    waves.push(wave);
  }
  return waves;
}
