/** Runs every benchmark in turn (`npm run bench`); each prints `name: value` lines, ratios last. */
import { join } from "node:path";

const which = process.argv.slice(2);
for (const b of ["boot", "supervisor", "inject"]) {
  if (which.length && !which.includes(b)) continue;
  console.log(`# bench/${b}.ts`);
  const p = Bun.spawnSync([process.execPath, join(import.meta.dir, `${b}.ts`)], {
    stdout: "inherit",
    stderr: "inherit",
  });
  if (p.exitCode !== 0) console.log(`# bench/${b}.ts failed (exit ${p.exitCode})`);
}
