/** A small seeded PRNG (mulberry32) so fuzz runs are repeatable: a failure names its seed. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
  const junk = [
    "\0",
    "\n",
    "[",
    "]",
    "{",
    '"',
    "'",
    "=",
    ":",
    "-",
    "\\",
    "\u00ff",
    "9".repeat(40),
    "[[",
    "]]",
    "#",
    "\t",
    "true",
    "-1",
  ];
  return {
    next,
    int,
    pick,
    bytes: (n: number) => Uint8Array.from({ length: n }, () => int(256)),
    /** Mutates text: inserts syntax junk, deletes, duplicates and flips random spans. */
    mutate(text: string, edits = 1 + int(6)): string {
      let s = text;
      for (let i = 0; i < edits; i++) {
        const at = int(s.length + 1);
        const kind = int(4);
        if (kind === 0) s = s.slice(0, at) + pick(junk) + s.slice(at);
        else if (kind === 1) s = s.slice(0, at) + s.slice(at + 1 + int(8));
        else if (kind === 2) s = s.slice(0, at) + s.slice(at, at + int(20)) + s.slice(at);
        else s = s.slice(0, at) + String.fromCharCode(int(128)) + s.slice(at + 1);
      }
      return s;
    },
  };
}
