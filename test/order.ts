/**
 * Ordering assertions over a console or log text that cannot pass when a
 * marker is missing: `indexOf`/`search` return -1 for an absent marker, and
 * -1 is "before" everything.
 */
import { expect } from "bun:test";

/** Position of the first match of `m` in `text` at or after `from`; fails the test when absent. */
export function positionOf(text: string, m: string | RegExp, from = 0): number {
  const rest = text.slice(from);
  const i = typeof m === "string" ? rest.indexOf(m) : rest.search(m);
  if (i < 0) expect(`${String(m)} is missing from the text`).toBe(`${String(m)} is present`);
  return from + i;
}

/** Every marker is present, each first seen after the previous one. */
export function expectInOrder(text: string, ...markers: (string | RegExp)[]): void {
  let at = -1;
  for (const m of markers) {
    const i = positionOf(text, m);
    if (i <= at) expect(`${String(m)} at ${i}`).toBe(`${String(m)} after ${at}`);
    at = i;
  }
}
