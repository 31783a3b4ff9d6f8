/**
 * Running a host tool (debugfs, mke2fs, apt-get, ...) synchronously: argv
 * straight to execve, never through a shell, so no argument is ever parsed
 * as shell syntax. Output is captured up to a cap (the tool is killed past
 * it) so a runaway or hostile tool cannot fill memory. A failure names the
 * command and the tail of its stderr, which is where tools say what went
 * wrong.
 */

/** How a command is run. */
export interface CommandOptions {
  cwd?: string;
  /** Added to this process's environment (which is kept). */
  env?: Record<string, string>;
  /** Bytes given on stdin (default: none). */
  stdin?: Uint8Array;
  /** Most bytes kept of stdout and of stderr each; the tool is killed past it. */
  maxOutput?: number;
  /** Names the command in errors (default: its argv). */
  what?: string;
}

/** What a command did. */
export interface CommandResult {
  /** Exit status; null when a signal ended it. */
  code: number | null;
  signal: string | null;
  stdout: Uint8Array;
  stderr: string;
}

/** Default output cap: far above what the tools print, far below memory. */
export const DEFAULT_MAX_OUTPUT = 64 * 1024 * 1024;

/** Pure: the last `lines` non-empty lines of `stderr`, joined, at most `chars` long. */
export function stderrTail(stderr: string, lines = 3, chars = 1000): string {
  const tail = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(-lines)
    .join(" | ");
  return tail.length > chars ? `…${tail.slice(-chars)}` : tail;
}

/** Pure: "what failed (3): tail of stderr", or "(killed by SIGTERM)" when a signal ended it. */
export function failureMessage(what: string, r: Omit<CommandResult, "stdout">): string {
  const how = r.code !== null ? `${r.code}` : `killed by ${r.signal ?? "a signal"}`;
  const tail = stderrTail(r.stderr);
  return `${what} failed (${how})${tail ? `: ${tail}` : ""}`;
}

/** Pure: argv as one line for messages (arguments with blanks quoted). */
export function showArgv(argv: readonly string[]): string {
  return argv.map((a) => (a === "" || /\s/.test(a) ? JSON.stringify(a) : a)).join(" ");
}

/**
 * Runs `argv` and returns what it did, whatever its exit status. Throws when
 * the tool cannot be started or prints more than the cap.
 */
export function runCommand(argv: readonly string[], o: CommandOptions = {}): CommandResult {
  if (!argv.length) throw new Error("runCommand: empty argv");
  const max = o.maxOutput ?? DEFAULT_MAX_OUTPUT;
  const what = o.what ?? showArgv(argv);
  let p: ReturnType<typeof Bun.spawnSync>;
  try {
    p = Bun.spawnSync([...argv], {
      cwd: o.cwd,
      env: o.env ? { ...process.env, ...o.env } : undefined,
      stdin: o.stdin ?? "ignore",
      stdout: "pipe",
      stderr: "pipe",
      maxBuffer: max,
      killSignal: "SIGKILL",
    });
  } catch (e) {
    throw new Error(`${what}: cannot run ${argv[0]}: ${(e as Error).message}`);
  }
  if (p.exitedDueToMaxBuffer)
    throw new Error(`${what}: printed more than ${max} bytes of output; stopped`);
  return {
    code: p.exitCode,
    signal: p.signalCode === undefined || p.signalCode === null ? null : String(p.signalCode),
    stdout: new Uint8Array(p.stdout ?? new Uint8Array(0)),
    stderr: (p.stderr ?? "").toString(),
  };
}

/** Runs `argv` and returns its output; throws, naming it and its stderr's tail, unless it exits 0. */
export function runChecked(argv: readonly string[], o: CommandOptions = {}): CommandResult {
  const r = runCommand(argv, o);
  if (r.code !== 0) throw new Error(failureMessage(o.what ?? showArgv(argv), r));
  return r;
}
