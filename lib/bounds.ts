/**
 * Bounds for parsed documents from outside (YAML, TOML, JSON), pure. A YAML
 * alias is a reference: Bun.YAML.parse shares the aliased node, so a small
 * file can stand for gigabytes that only materialise when something walks
 * or serialises the value (JSON replies, validation, YAML.stringify). This
 * walk counts the value as it would be expanded and stops as soon as the
 * budget is spent, so it costs at most the budget, whatever the document.
 */

/** Keys that name JavaScript's object machinery: refused in documents from outside. */
export const RESERVED_KEYS: ReadonlySet<string> = new Set([
  "__proto__",
  "constructor",
  "prototype",
]);

/** Limits of one document. */
export interface Bounds {
  /** Budget of the expanded value: 1 per node (scalar, list, map) + the length of every string and key. */
  maxCost: number;
  /** Deepest nesting of lists and maps (the top value is depth 0). */
  maxDepth: number;
  /** Refuse {@link RESERVED_KEYS} as map keys. */
  refuseReservedKeys: boolean;
}

/** Why a value is out of bounds, and where (the path of the node that went over). */
export type BoundsIssue =
  | { kind: "cost"; path: (string | number)[] }
  | { kind: "depth"; path: (string | number)[] }
  | { kind: "reserved"; key: string; path: (string | number)[] };

/**
 * The budget a document without aliases never reaches: each node takes at
 * least one byte of source and each string character at least one more, so
 * a text of `bytes` bytes expands to less than 2 × bytes (+ a top node).
 */
export function costFor(bytes: number): number {
  return 2 * bytes + 64;
}

/** Walks `value` as expanded; the first issue found, or null. Never costs more than `maxCost` steps. */
export function checkBounds(value: unknown, b: Bounds): BoundsIssue | null {
  let cost = 0;
  const path: (string | number)[] = [];
  const walk = (x: unknown, depth: number): BoundsIssue | null => {
    cost += 1 + (typeof x === "string" ? x.length : 0);
    if (cost > b.maxCost) return { kind: "cost", path: [...path] };
    if (x === null || typeof x !== "object" || x instanceof Date) return null;
    if (depth >= b.maxDepth) return { kind: "depth", path: [...path] };
    if (Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) {
        path.push(i);
        const r = walk(x[i], depth + 1);
        path.pop();
        if (r) return r;
      }
      return null;
    }
    for (const k of Object.keys(x)) {
      path.push(k);
      if (b.refuseReservedKeys && RESERVED_KEYS.has(k))
        return { kind: "reserved", key: k, path: [...path] };
      cost += k.length;
      const r = walk((x as Record<string, unknown>)[k], depth + 1);
      path.pop();
      if (r) return r;
    }
    return null;
  };
  return walk(value, 0);
}

/** The words of a {@link BoundsIssue}, for an input error message. */
export function boundsMessage(issue: BoundsIssue, b: Bounds): string {
  switch (issue.kind) {
    case "cost":
      return `too large once expanded (more than ${b.maxCost} nodes and characters; aliases of large values?)`;
    case "depth":
      return `nested more than ${b.maxDepth} levels deep`;
    case "reserved":
      return `"${issue.key}" is not allowed as a key`;
  }
}
