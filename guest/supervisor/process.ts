/**
 * The only Bun.spawn wrapper in hero-init. It registers every child in the
 * reaper's owned set (so PID 1's orphan reaper never steals it), starts it
 * in its own session (process group = pid, so group signals reach its
 * children), puts it in its service cgroup through the `hero-exec` helper
 * when present, and turns stdout/stderr into lines, read no faster than
 * the service's pacer allows (pace.ts).
 */

import { closeSync, existsSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import { LAYOUT } from "../../lib/layout.ts";
import { pipe, setCloexec } from "../../sys/ffi.ts";
import { createGcHint, fullCollection } from "./gc-hint.ts";
import { lineSplitter } from "./logs.ts";
import { createPacer, outputCost, type Pacer } from "./pace.ts";
import { adoptedPids, decodeWaitStatus, ownedPids, scheduleReap } from "./reaper.ts";

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
  /** Run as this uid/gid (needs the exec helper, which drops privileges before exec). */
  uid?: number;
  gid?: number;
}

const signalNames = new Map<number, string>(
  Object.entries(constants.signals).map(([n, v]) => [v as number, n]),
);

/** Bytes of output handled before the event loop gets a turn. */
const PUMP_SLICE = 64 * 1024;
/**
 * Bytes read without pacing once the child has exited: what it wrote last
 * is still in the pipe (64 KiB) and goes into the log at once, before the
 * exit is reported. A grandchild that keeps the pipe open is paced again after.
 */
const DRAIN_AFTER_EXIT = 1024 * 1024;

/** Service output taken in (all services) between two full collections (see gc-hint.ts). */
const TAKEN_PER_COLLECTION = 8 * 1024 * 1024;
/** Counts all services' output: evicted lines are garbage the heap hardly notices. */
const taken = createGcHint(TAKEN_PER_COLLECTION, fullCollection);

/** Reads one output stream into lines: `done` at EOF; `drain()` lifts the pacing for a while. */
interface Pump {
  done: Promise<void>;
  drain(): void;
}

/**
 * Reads a stream as lines, paced by `pacer` (shared by a service's stdout
 * and stderr): a flood waits in its own write(2), never PID 1's memory.
 */
function pump(stream: ReadableStream<Uint8Array>, onText: (t: string) => void, pacer: Pacer): Pump {
  const split = lineSplitter(onText);
  let free = 0;
  let wake: (() => void) | null = null;
  /** Waits `ms` (cut short by drain()), or just gives the event loop a turn. */
  const rest = (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms <= 0) {
        setImmediate(resolve);
        return;
      }
      const t = setTimeout(go, ms);
      wake = go;
      function go() {
        clearTimeout(t);
        wake = null;
        resolve();
      }
    });
  const run = async () => {
    try {
      for await (const chunk of stream) {
        // A service that never stops printing always has a chunk ready: without a
        // turn for the event loop between slices it would starve the control
        // socket and the UI (the reads resolve as microtasks).
        for (let off = 0; off < chunk.length; off += PUMP_SLICE) {
          const piece = chunk.subarray(off, off + PUMP_SLICE);
          const wait = pacer.charge(outputCost(piece.length, split.push(piece)));
          taken(piece.length);
          free -= piece.length;
          await rest(free > 0 ? 0 : wait);
        }
      }
    } catch {
      // the pipe broke: the exit is reported separately
    }
    split.end();
  };
  return {
    done: run(),
    drain() {
      free = DRAIN_AFTER_EXIT;
      wake?.();
    },
  };
}

/**
 * The read ends of the services' output pipes, by pid. hero-init creates
 * these pipes itself (not Bun's socketpairs) so it knows their descriptors:
 * a self-update hands them to the next hero-init (guest/pid1/reexec.ts).
 */
export const outputFds = new Map<number, { stdout: number; stderr: number }>();

/** Reads a pipe's read end as lines until EOF, then closes it. */
function pumpFd(fd: number, onText: (t: string) => void, pacer: Pacer): Pump {
  const p = pump(Bun.file(fd).stream(), onText, pacer);
  return {
    done: p.done.finally(() => {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
    }),
    drain: p.drain,
  };
}

/** Lifts the pumps' pacing and waits (at most 200 ms) for what the child wrote last. */
function drained(pumps: Pump[]): Promise<unknown> {
  for (const p of pumps) p.drain();
  return Promise.race([Promise.all(pumps.map((p) => p.done)), Bun.sleep(200)]);
}

/** Two pipes for a child's stdout and stderr, or null when pipe2 is unavailable. */
function outputPipes(): { r: [number, number]; w: [number, number] } | null {
  try {
    const [r1, w1] = pipe();
    try {
      const [r2, w2] = pipe();
      return { r: [r1, r2], w: [w1, w2] };
    } catch (e) {
      closeSync(r1);
      closeSync(w1);
      throw e;
    }
  } catch {
    return null;
  }
}

/**
 * Spawns a child. Throws (synchronously) if it cannot be started at all,
 * e.g. the binary is missing and there is no helper to report it.
 */
export function spawnChild(
  spec: SpawnSpec,
  helper = process.env.HERO_EXEC_HELPER ?? LAYOUT.execHelper,
): Child {
  const ids = spec.uid !== undefined || spec.gid !== undefined;
  const useHelper = (spec.cgroup !== null || ids) && existsSync(helper);
  if (ids && !useHelper)
    throw Object.assign(new Error(`uid/gid need the exec helper ${helper}, which is missing`), {
      code: "EACCES",
    });
  const argv = useHelper
    ? [
        helper,
        ...(spec.cgroup !== null ? ["-c", spec.cgroup] : []),
        ...(spec.uid !== undefined ? ["-u", String(spec.uid)] : []),
        ...(spec.gid !== undefined ? ["-g", String(spec.gid)] : []),
        "--",
        ...spec.argv,
      ]
    : spec.argv;
  const capture = spec.onLine !== null && !spec.inheritOutput;
  const pipes = capture ? outputPipes() : null;
  const other = spec.inheritOutput ? "inherit" : "ignore";
  let proc: Bun.Subprocess;
  try {
    proc = Bun.spawn(argv, {
      argv0: useHelper ? "hero-exec" : undefined,
      cwd: spec.cwd,
      env: spec.env,
      stdin: "ignore",
      stdout: pipes ? pipes.w[0] : capture ? "pipe" : other,
      stderr: pipes ? pipes.w[1] : capture ? "pipe" : other,
      detached: true,
    });
  } catch (e) {
    if (pipes) for (const fd of [...pipes.r, ...pipes.w]) closeSync(fd);
    throw e;
  }
  const pid = proc.pid;
  ownedPids.add(pid);
  // Without the helper, move the pid right after spawn (a fork in its first instructions could escape).
  if (spec.cgroup !== null && !useHelper) joinPid(spec.cgroup, pid);
  const pumps: Pump[] = [];
  if (pipes) {
    // The child has its copies of the write ends; ours would keep EOF from ever coming.
    closeSync(pipes.w[0]);
    closeSync(pipes.w[1]);
  }
  if (capture && spec.onLine) {
    const onLine = spec.onLine;
    const pacer = createPacer();
    if (pipes) {
      outputFds.set(pid, { stdout: pipes.r[0], stderr: pipes.r[1] });
      pumps.push(pumpFd(pipes.r[0], (t) => onLine("stdout", t), pacer));
      pumps.push(pumpFd(pipes.r[1], (t) => onLine("stderr", t), pacer));
    } else {
      const out = proc.stdout as ReadableStream<Uint8Array>;
      const err = proc.stderr as ReadableStream<Uint8Array>;
      pumps.push(pump(out, (t) => onLine("stdout", t), pacer));
      pumps.push(pump(err, (t) => onLine("stderr", t), pacer));
    }
  }
  const exited = proc.exited.then(
    async (code) => {
      ownedPids.delete(pid);
      outputFds.delete(pid);
      // Output written just before exit is still in the pipe: drain it first (bounded).
      await drained(pumps);
      const sig = proc.signalCode ? String(proc.signalCode) : null;
      return { code: sig ? null : code, signal: sig } satisfies ExitInfo;
    },
    () => {
      ownedPids.delete(pid);
      outputFds.delete(pid);
      return { code: null, signal: null } satisfies ExitInfo;
    },
  );
  return { pid, startedAt: Date.now(), exited, signal: groupSignal(pid) };
}

/** Signals a process group (a service runs in its own session), falling back to the pid; never throws. */
export function killGroup(pid: number, sig: number | NodeJS.Signals): void {
  try {
    process.kill(-pid, sig);
  } catch {
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
  }
}

function groupSignal(pid: number): (sig: number) => void {
  return (sig) => killGroup(pid, sig);
}

/** A service process inherited from the previous hero-init across a self-update. */
export interface AdoptedProcess {
  /** 0 for a oneshot that already succeeded (not run again). */
  pid: number;
  startedAt: number;
  restarts: number;
  /** Read ends of its output pipes, kept open across execve; absent when not captured. */
  stdoutFd?: number;
  stderrFd?: number;
}

/**
 * Takes over a running process after a re-exec: it is our child (same PID
 * 1) but not Bun's, so the reaper collects its exit status
 * (`adoptedPids`), and its output keeps flowing from the inherited pipes.
 * A process that exited during the hand-off is a zombie already: the next
 * reaper scan reports its exit and the supervisor acts on it as usual.
 */
export function adoptChild(
  a: AdoptedProcess,
  onLine: ((stream: "stdout" | "stderr", text: string) => void) | null,
): Child {
  // pid 0: a oneshot that had already succeeded; it is not run again.
  if (a.pid === 0)
    return {
      pid: 0,
      startedAt: a.startedAt,
      exited: Promise.resolve({ code: 0, signal: null }),
      signal: () => {},
    };
  const pumps: Pump[] = [];
  const pacer = createPacer();
  const fds = { stdout: a.stdoutFd, stderr: a.stderrFd };
  for (const stream of ["stdout", "stderr"] as const) {
    const fd = fds[stream];
    if (fd === undefined) continue;
    try {
      setCloexec(fd, true);
    } catch {
      continue; // not open: nothing to read
    }
    pumps.push(pumpFd(fd, onLine ? (t) => onLine(stream, t) : () => {}, pacer));
  }
  if (a.stdoutFd !== undefined && a.stderrFd !== undefined)
    outputFds.set(a.pid, { stdout: a.stdoutFd, stderr: a.stderrFd });
  let alive = true;
  try {
    process.kill(a.pid, 0);
  } catch {
    alive = false; // reaped before the hand-off (should not happen: the snapshot is taken right before execve)
  }
  if (!alive) {
    outputFds.delete(a.pid);
    return {
      pid: a.pid,
      startedAt: a.startedAt,
      exited: Promise.resolve({ code: null, signal: null }),
      signal: () => {},
    };
  }
  const exited = new Promise<ExitInfo>((resolve) => {
    adoptedPids.set(a.pid, (status) => {
      outputFds.delete(a.pid);
      const w = decodeWaitStatus(status);
      void drained(pumps).then(() =>
        resolve({ code: w.code, signal: w.signal === null ? null : signalNameOf(w.signal) }),
      );
    });
  });
  scheduleReap();
  return { pid: a.pid, startedAt: a.startedAt, exited, signal: groupSignal(a.pid) };
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
