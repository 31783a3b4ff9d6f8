/**
 * The dependency graph of services (`after:`), pure: cycles, readiness of a
 * service's dependencies, the verdict (an event for the state table) for a
 * service waiting to start, and the shutdown order.
 */
import { type Event, type State, satisfiesDependents, type Target } from "./state.ts";

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

/** Every member of a dependency cycle → the cycle's text, e.g. "dependency cycle: a → b → a". */
export function cycleReasons(deps: Deps): Map<string, string> {
  const out = new Map<string, string>();
  for (const cyc of findCycles(deps)) {
    const text = `dependency cycle: ${[...cyc, cyc[0]].join(" → ")}`;
    for (const n of cyc) out.set(n, text);
  }
  return out;
}

/** What the dependency check needs to know of the service it evaluates. */
export interface Candidate {
  target: Target;
  state: State;
  /** Whether its process is alive. */
  alive: boolean;
  /** Whether its service file is invalid (it never starts). */
  broken: boolean;
  after: readonly string[];
}

/** The events dependency evaluation feeds to the state table. */
export type DepsEvent = Extract<Event, { type: "cycle" | "depsBlocked" | "depsReady" }>;

/**
 * The verdict for one service: null when it is not waiting to start (target
 * Down, running, broken, or not Blocked/Unknown); else `cycle` when it is in
 * a dependency cycle (`cycle` is that cycle's text), `depsBlocked` with what
 * it waits for, or `depsReady`.
 */
export function depsEvent(
  c: Candidate,
  cycle: string | undefined,
  lookup: (name: string) => { state: State; oneshot: boolean } | undefined,
): DepsEvent | null {
  if (c.target !== "Up" || c.alive || c.broken) return null;
  if (c.state !== "Blocked" && c.state !== "Unknown") return null;
  if (cycle) return { type: "cycle", reason: cycle };
  const { missing, waiting } = unmetDeps(c.after, lookup);
  if (missing.length === 0 && waiting.length === 0) return { type: "depsReady" };
  const reason = [
    missing.length ? `waiting for undefined ${missing.join(", ")}` : "",
    waiting.length ? `waiting for ${waiting.join(", ")}` : "",
  ]
    .filter(Boolean)
    .join("; ");
  return { type: "depsBlocked", reason };
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
