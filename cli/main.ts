/**
 * hero-init: one multi-call program for every guest role and every host
 * command (each Bun runtime weighs ~105 MB; a guest carries exactly one).
 *
 *   PID 1            → boot and supervise (guest/pid1)
 *   argv[0] "zinit"  → the zinit-compatible CLI (cli/zinit.ts)
 *   otherwise        → `hero-init <command>` (the command tree in cli/index.ts)
 *
 * Only this file decides the process exit code; PID 1 never exits. Nothing
 * but the path taken is loaded: PID 1 never loads the CLI, a command only
 * its own module.
 */
import { basename } from "node:path";

async function main(): Promise<void> {
  // As PID 1 of a container/pid namespace, `init` (after zinit's global
  // options: `zinit -s SOCK init`) runs the supervisor only.
  const init =
    process.pid === 1 && (await import("./init-args.ts")).isInitCommand(process.argv.slice(2));
  if (process.pid === 1 && !init) {
    const { runPid1 } = await import("../guest/pid1/run.ts");
    await runPid1();
    return;
  }
  // The build starts the executable with raised JIT thresholds (scripts/build.sh): right for a
  // short command. One that keeps running (init, serve, a long deploy) gets the normal policy.
  setTimeout(() => Bun.unsafe.setJITPolicy(1), 2000).unref();
  const { runCli } = await import("./index.ts");
  process.exit(await runCli(basename(process.argv0), process.argv.slice(2)));
}

await main();
