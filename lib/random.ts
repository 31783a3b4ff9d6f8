/**
 * Random hex strings from the Web Crypto global (the kernel's CSPRNG, as
 * node:crypto's randomBytes). PID 1's boot path uses this instead of
 * importing node:crypto, a large JavaScript module in Bun: 3.7 ms to load on
 * the host, a few hundred ms under TCG (docs/benchmarks.md, "Session 8").
 */

/** `bytes` random bytes as lowercase hex (2 × bytes characters). */
export function randomHex(bytes: number): string {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
