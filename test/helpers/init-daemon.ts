/**
 * One hero-init supervisor for test/integration/supervisor.test.ts: the real
 * dist/hero-init in `init` mode (not PID 1: a shell is PID 1 of its own pid
 * namespace), with its own directory, service files, socket, cgroup subtree
 * and sleep durations. Each test block (or each test that changes what
 * another would read) starts one, so no test depends on what an earlier one
 * did. stop() ends the namespace (unshare --kill-child), waits until its
 * processes are gone, and removes its cgroup subtree and directory.
 * (test/attack/supervisor-daemon.ts builds the attack tests' daemon on this
 * one: hero-init's own pid for its RSS, and requests timed by the caller.)
 */

import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { until } from "./poll.ts";

const ROOT = join(import.meta.dir, "../..");
export const BIN = join(ROOT, "dist/hero-init");
const CG_PARENT = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].find(
  (p) =>
    existsSync(`${p}/cgroup.kill`) ||
    (existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`)),
);

// Sleep durations unique to this run (6 digits from our pid), then to the
// daemon (2 digits), then to the use (2 digits): the pgrep-based checks must
// never see (or kill) the processes of another run or of another daemon.
const RUN_PREFIX = String(100_000 + (process.pid % 800_000));
let started = 0;

/** How a raw exchange ended: a reply line (or, with untilClose, the peer's close), the peer closed, or our timeout. */
export type RawEnd = "line" | "closed" | "timeout";

/** What a service file may refer to before the daemon exists: its sleeps and its directory. */
export interface DaemonEnv {
  /** A sleep duration (`sleep ${S(n)}`) unique to this run, this daemon and n (0–99). */
  S(n: number): string;
  dir: string;
}

export interface SupervisorDaemon extends DaemonEnv {
  /** The service directory (`init -c`). */
  etc: string;
  sock: string;
  /** The daemon's cgroup subtree, or undefined when the host has no cgroup v2 tree. */
  cgroot: string | undefined;
  /** A pgrep -f pattern matching every sleep of this daemon (and no other). */
  sleeps: string;
  proc: Subprocess;
  /** What the daemon logged (stderr) so far. */
  out(): string;
  cli(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  /** Sends `line` on a fresh connection and collects the reply (up to a line, or until close). */
  rawEx(line: string, untilClose?: boolean): Promise<{ got: string; end: RawEnd }>;
  raw(line: string, untilClose?: boolean): Promise<string>;
  // biome-ignore lint/suspicious/noExplicitAny: a JSON-RPC reply, checked by the tests
  rpc(method: string, params?: unknown): Promise<any>;
  /** Polls `fn` (10 s by default); a timeout shows the daemon's output. */
  waitFor<T>(fn: () => Promise<T | undefined> | T | undefined, ms?: number): Promise<T>;
  stop(): Promise<void>;
}

/** The pids (host's) of processes whose command line matches `pattern` (pgrep -f). */
export const hostPids = (pattern: string) =>
  Bun.spawnSync(["pgrep", "-f", pattern]).stdout.toString().split("\n").filter(Boolean);

/** Removes a cgroup subtree, deepest first (rmdir only: cgroup files go with their directory). */
function removeCgroup(path: string): void {
  if (!existsSync(path)) return;
  for (const e of readdirSync(path, { withFileTypes: true }))
    if (e.isDirectory()) removeCgroup(join(path, e.name));
  rmdirSync(path);
}

/** Sends `line` on a fresh connection; what came back up to a line (or until close) or `ms`. */
export function rawExchange(sock: string, line: string, untilClose: boolean, ms = 5000) {
  return new Promise<{ got: string; end: RawEnd }>((resolve) => {
    let got = "";
    const c = createConnection(sock);
    const finish = (end: RawEnd) => {
      clearTimeout(timer);
      c.destroy();
      resolve({ got, end });
    };
    const timer = setTimeout(() => finish("timeout"), ms);
    c.on("data", (d) => {
      got += d.toString();
      if (!untilClose && got.includes("\n")) finish("line");
    });
    c.on("close", () => finish("closed"));
    c.on("error", () => finish("closed"));
    c.write(line);
  });
}

/** Spawns `hero-init init` with its own pid namespace; its stderr collected by `log`. */
function spawnInit(etc: string, sock: string, helper: string, cgroot: string | undefined) {
  const args = [BIN, "init", "-c", etc, "-s", sock, ...(cgroot ? ["--cgroup-root", cgroot] : [])];
  return Bun.spawn(
    // --kill-child: when stop() kills unshare, the namespace (every service) goes with it.
    ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "--"].concat(
      ["sh", "-c", `"$@"; true`, "sh"],
      args,
    ),
    {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
      env: { ...process.env, HERO_EXEC_HELPER: helper },
    },
  );
}

/**
 * Starts a daemon with the service files `services(env)` (name → YAML);
 * resolves once its socket answers `list`.
 */
export async function startDaemon(
  services: (env: DaemonEnv) => Record<string, string>,
): Promise<SupervisorDaemon> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`bash scripts/build.sh\` first`);
  const n = started++;
  if (n > 99) throw new Error("more than 100 daemons in one run: their sleeps would collide");
  const prefix = `${RUN_PREFIX}${String(n).padStart(2, "0")}`;
  const S = (i: number) => {
    if (!Number.isInteger(i) || i < 0 || i > 99) throw new Error(`sleep index ${i} not in 0–99`);
    return `${prefix}${String(i).padStart(2, "0")}`;
  };
  const dir = mkdtempSync(join(tmpdir(), "hero-sup-"));
  const etc = join(dir, "zinit");
  const sock = join(dir, "zinit.sock");
  const helperDir = join(dir, "bin");
  mkdirSync(etc);
  mkdirSync(helperDir);
  symlinkSync(join(ROOT, "dist/preinit"), join(helperDir, "hero-exec"));
  for (const [name, y] of Object.entries(services({ S, dir })))
    writeFileSync(join(etc, `${name}.yaml`), y);
  const cgroot = CG_PARENT ? `${CG_PARENT}/hero-it-${process.pid}-${n}` : undefined;
  const proc = spawnInit(etc, sock, join(helperDir, "hero-exec"), cgroot);
  let log = "";
  (async () => {
    for await (const c of proc.stderr as ReadableStream<Uint8Array>)
      log += new TextDecoder().decode(c);
  })();
  const sleeps = `sleep ${prefix}[0-9][0-9]$`;
  const waitFor = <T>(fn: () => Promise<T | undefined> | T | undefined, ms = 10_000) =>
    until("the daemon", fn, ms, 50, () => `daemon output:\n${log}`);
  const cli = async (...args: string[]) => {
    const p = Bun.spawn([BIN, "-s", sock, ...args], {
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    const [out, err, code] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
      p.exited,
    ]);
    return { code, out, err };
  };
  const rawEx = (line: string, untilClose = true) => rawExchange(sock, line, untilClose);
  const raw = async (line: string, untilClose = true) => (await rawEx(line, untilClose)).got;
  const d: SupervisorDaemon = {
    S,
    dir,
    etc,
    sock,
    cgroot,
    sleeps,
    proc,
    out: () => log,
    cli,
    rawEx,
    raw,
    rpc: async (method, params = []) =>
      JSON.parse(
        await raw(`${JSON.stringify({ jsonrpc: "2.0", id: 7, method, params })}\n`, false),
      ),
    waitFor,
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
      // The namespace's processes die with its PID 1; then its cgroups are empty.
      await waitFor(() => hostPids(sleeps).length === 0 || undefined);
      if (cgroot)
        await waitFor(() => {
          removeCgroup(cgroot);
          return true;
        });
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    await waitFor(async () => (existsSync(sock) && (await cli("list")).code === 0) || undefined);
  } catch (e) {
    await d.stop();
    throw e;
  }
  return d;
}
