/**
 * Runs every benchmark in turn (`npm run bench`, or `bun bench/run.ts [boot|supervisor|inject|ui|update|mycelium]…`).
 * Each prints `name: value` lines, its ratio lines (against a baseline measured
 * in the same run) last; lines starting with `#` are comments. Needs `npm run
 * build` first. Exits 1 if a benchmark failed. Not a test: `npm test` never runs it.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

const ALL = ["boot", "supervisor", "inject", "ui", "update", "mycelium"];
const which = process.argv.slice(2);
for (const w of which) {
  if (!ALL.includes(w)) {
    console.error(`unknown benchmark ${w} (have: ${ALL.join(", ")})`);
    process.exit(2);
  }
}
if (!existsSync(join(import.meta.dir, "../dist/hero-init"))) {
  console.error("dist/hero-init missing: run `npm run build` first");
  process.exit(2);
}
let failed = 0;
for (const b of ALL) {
  if (which.length && !which.includes(b)) continue;
  console.log(`# bench/${b}.ts`);
  const t0 = performance.now();
  const p = Bun.spawnSync([process.execPath, join(import.meta.dir, `${b}.ts`)], {
    stdout: "inherit",
    stderr: "inherit",
  });
  const s = ((performance.now() - t0) / 1000).toFixed(1);
  if (p.exitCode !== 0) {
    failed++;
    console.log(`# bench/${b}.ts failed (exit ${p.exitCode}) after ${s} s`);
  } else console.log(`# bench/${b}.ts took ${s} s`);
}
process.exit(failed ? 1 : 0);
