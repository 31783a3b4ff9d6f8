/**
 * The only Bun.spawn wrapper in hero-init. It registers every child in the
 * reaper's owned set (so PID 1's orphan reaper never steals it), starts it
 * in its own session (process group = pid, so group signals reach its
 * children), puts it in its service cgroup through the `hero-exec` helper
 * when present, and turns stdout/stderr into lines.
 */
import { existsSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { ownedPids } from "../pid1/reaper.ts";
import { lineSplitter } from "./logs.ts";

/** Where the injector puts the exec helper (a link to the pre-init binary). */
export const EXEC_HELPER = "/usr/lib/hero/hero-exec";

/** How a process ended. */
export interface ExitInfo {
  code: number | null;
  signal: string | null;
}

/** A running child. */
export interface Child {
  pid: number;
  startedAt: number;
  exited: Promise<ExitInfo>;
  /** Sends a signal to the whole process group (falls back to the pid). */
  signal(sig: number): void;
}

/** What to run. */
export interface SpawnSpec {
  argv: string[];
  env: Record<string, string>;
  cwd: string;
  /** cgroup directory to start in, or null. */
  cgroup: string | null;
  /** Called with each output line; null discards output. */
  onLine: ((stream: "stdout" | "stderr", text: string) => void) | null;
  /** Inherit the console instead of capturing (log: stdout in zinit means "to our stdout"). */
  inheritOutput?: boolean;
}

const signalNames = new Map<number, string>(
  Object.entries(constants.signals).map(([n, v]) => [v as number, n]),
);

async function pump(
  stream: ReadableStream<Uint8Array>,
  onText: (t: string) => void,
): Promise<void> {
  const split = lineSplitter(onText);
  try {
    for await (const chunk of stream) split.push(chunk);
  } catch {
    // the pipe broke: the exit is reported separately
  }
  split.end();
}

/**
 * Spawns a child. Throws (synchronously) if it cannot be started at all,
 * e.g. the binary is missing and there is no helper to report it.
 */
export function spawnChild(
  spec: SpawnSpec,
  helper = process.env.HERO_EXEC_HELPER ?? EXEC_HELPER,
): Child {
  const useHelper = spec.cgroup !== null && existsSync(helper);
  const argv = useHelper ? [helper, "-c", spec.cgroup as string, "--", ...spec.argv] : spec.argv;
  const capture = spec.onLine !== null && !spec.inheritOutput;
  const proc = Bun.spawn(argv, {
    argv0: useHelper ? "hero-exec" : undefined,
    cwd: spec.cwd,
    env: spec.env,
    stdin: "ignore",
    stdout: capture ? "pipe" : spec.inheritOutput ? "inherit" : "ignore",
    stderr: capture ? "pipe" : spec.inheritOutput ? "inherit" : "ignore",
    detached: true,
  });
  const pid = proc.pid;
  ownedPids.add(pid);
  // Without the helper, move the pid right after spawn (a fork in its first instructions could escape).
  if (spec.cgroup !== null && !useHelper) joinPid(spec.cgroup, pid);
  const pumps: Promise<void>[] = [];
  if (capture && spec.onLine) {
    const onLine = spec.onLine;
    pumps.push(pump(proc.stdout as ReadableStream<Uint8Array>, (t) => onLine("stdout", t)));
    pumps.push(pump(proc.stderr as ReadableStream<Uint8Array>, (t) => onLine("stderr", t)));
  }
  const exited = proc.exited.then(
    async (code) => {
      ownedPids.delete(pid);
      // Output written just before exit is still in the pipe: drain it first (bounded).
      await Promise.race([Promise.all(pumps), Bun.sleep(200)]);
      const sig = proc.signalCode ? String(proc.signalCode) : null;
      return { code: sig ? null : code, signal: sig } satisfies ExitInfo;
    },
    () => {
      ownedPids.delete(pid);
      return { code: null, signal: null } satisfies ExitInfo;
    },
  );
  return {
    pid,
    startedAt: Date.now(),
    exited,
    signal(sig: number) {
      try {
        process.kill(-pid, sig);
      } catch {
        try {
          process.kill(pid, sig);
        } catch {
          // already gone
        }
      }
    },
  };
}

/** Options of a non-service child (see spawnOwned). */
export type OwnedSpawnOptions = Omit<
  Bun.SpawnOptions.SpawnOptions<"ignore" | "pipe", "ignore" | "pipe", "ignore" | "pipe">,
  "stdio"
>;

/**
 * Bun.spawn for children that are not services (the UI's debug terminal,
 * the guest agent's exec): registered in the reaper's owned set while they
 * run, so PID 1's orphan scan never waits for them and Bun's `exited` keeps
 * working. Output goes through `terminal` (a PTY), pipes the caller asks
 * for, or is ignored (the default: never PID 1's console).
 */
export function spawnOwned(argv: string[], opts: OwnedSpawnOptions): Bun.Subprocess {
  const proc = Bun.spawn(
    argv,
    opts.terminal
      ? opts
      : {
          ...opts,
          stdin: opts.stdin ?? "ignore",
          stdout: opts.stdout ?? "ignore",
          stderr: opts.stderr ?? "ignore",
        },
  );
  ownedPids.add(proc.pid);
  proc.exited.finally(() => ownedPids.delete(proc.pid)).catch(() => {});
  return proc;
}

function joinPid(cgroup: string, pid: number): void {
  try {
    writeFileSync(`${cgroup}/cgroup.procs`, String(pid));
  } catch {
    // the group vanished or cgroups are read-only: the service still runs
  }
}

/** Name of a signal number (SIGTERM for 15), for messages. */
export function signalNameOf(n: number): string {
  return signalNames.get(n) ?? `signal ${n}`;
}
