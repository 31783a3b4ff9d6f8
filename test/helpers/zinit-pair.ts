/**
 * zinit and hero-init side by side, for the drop-in tests
 * (test/integration/zinit-*.test.ts): each daemon runs as PID 1 of a pid
 * namespace of its own, started the way zinit is (`zinit -s SOCK init -c
 * DIR --container`: hero-init by a symlink named zinit, so its PID-1 path
 * and zinit's argument order are what is tested), with the same service
 * files. A CLI runs as `zinit -s SOCK …`: the real zinit 0.2.14 or
 * hero-init's. stop() kills the namespace (unshare --kill-child) and
 * removes the directory. Needs `unshare`, a built dist/hero-init and the
 * real zinit (test/vendor.ts): fails loudly without them.
 */

import { existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { vendorBinary } from "../vendor.ts";
import { until } from "./poll.ts";

const ROOT = join(import.meta.dir, "../..");
const BIN = join(ROOT, "dist/hero-init");

export type Kind = "zinit" | "hero";

export interface Daemon {
  kind: Kind;
  dir: string;
  sock: string;
  proc: Subprocess;
  /** What the daemon printed so far. */
  output(): string;
  stop(): Promise<void>;
}

export interface CliResult {
  code: number;
  out: string;
  err: string;
}

/** `zinit` of each kind: the real binary, or a symlink named zinit to dist/hero-init. */
function zinitBinary(kind: Kind, dir: string): string {
  if (kind === "zinit") return vendorBinary("zinit");
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`bash scripts/build.sh\` first`);
  const link = join(dir, "zinit");
  if (!existsSync(link)) symlinkSync(BIN, link);
  return link;
}

/** Where the CLI's `zinit` symlink lives (removeCliDir() when the tests are done). */
let cliDir: string | undefined;

/** Removes the CLI's symlink directory (call in afterAll). */
export function removeCliDir(): void {
  if (cliDir) rmSync(cliDir, { recursive: true, force: true });
  cliDir = undefined;
}

/** A CLI of `kind` (real zinit 0.2.14, or hero-init as zinit), for sockets of any daemon. */
export function cliOf(kind: Kind): (sock: string, ...args: string[]) => Promise<CliResult> {
  cliDir ??= mkdtempSync(join(tmpdir(), "zinit-cli-"));
  const bin = zinitBinary(kind, cliDir);
  return async (sock, ...args) => {
    const p = Bun.spawn([bin, "-s", sock, ...args], {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, out, err };
  };
}

/** Polls `fn` until it returns something other than undefined/false. */
export const waitFor = <T>(
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  what: string,
  ms = 20_000,
) => until(what, fn, ms, 50);

/** Starts a daemon of `kind` with these service files; resolves once its socket answers. */
export async function startDaemon(kind: Kind, services: Record<string, string>): Promise<Daemon> {
  const dir = mkdtempSync(join(tmpdir(), `zinit-${kind}-`));
  const etc = join(dir, "etc");
  mkdirSync(etc);
  for (const [n, y] of Object.entries(services)) writeFileSync(join(etc, `${n}.yaml`), y);
  const sock = join(dir, "zinit.sock");
  const bin = zinitBinary(kind, dir);
  const proc = Bun.spawn(
    ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"].concat([
      "--",
      bin,
      "-s",
      sock,
      "init",
      "-c",
      etc,
      "--container",
    ]),
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  let output = "";
  for (const stream of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[])
    (async () => {
      for await (const c of stream) output += new TextDecoder().decode(c);
    })();
  const d: Daemon = {
    kind,
    dir,
    sock,
    proc,
    output: () => output,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const list = cliOf("zinit");
  await waitFor(
    async () => existsSync(sock) && (await list(sock, "list")).code === 0,
    `${kind}'s socket; its output:\n${output}`,
  );
  return d;
}

/** Pure: a CLI's output with pids replaced (they differ between daemons). */
export function normalise(text: string): string {
  return text.replace(/pid: \d+/g, "pid: N").replace(/Pid\(\d+\)/g, "Pid(N)");
}

/** Pure: YAML `name: state` lines as a sorted list (zinit prints a hash map's order). */
export function sortedLines(text: string): string[] {
  return text.split("\n").filter(Boolean).sort();
}

/** A long-running CLI (`log` following): what it printed so far, and stop(). */
export function spawnCli(kind: Kind, sock: string, ...args: string[]) {
  cliOf(kind); // makes the symlink
  const bin = zinitBinary(kind, cliDir as string);
  const p = Bun.spawn([bin, "-s", sock, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  let out = "";
  (async () => {
    for await (const c of p.stdout as ReadableStream<Uint8Array>)
      out += new TextDecoder().decode(c);
  })();
  return {
    out: () => out,
    async stop() {
      p.kill("SIGKILL");
      await p.exited;
    },
  };
}
