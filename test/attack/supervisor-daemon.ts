/**
 * The real supervisor for attack tests: dist/hero-init in `init` mode inside
 * a pid namespace of its own (as test/integration/supervisor.test.ts runs
 * it), with the given service files, its control socket in a temporary
 * directory. stop() kills the namespace (unshare --kill-child) and removes
 * the directory. Needs `unshare` and a built dist/hero-init: fails loudly
 * without them.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const ROOT = join(import.meta.dir, "../..");
export const BIN = join(ROOT, "dist/hero-init");

export interface Daemon {
  dir: string;
  sock: string;
  /** hero-init's pid (in this test's pid namespace). */
  pid: number;
  /** What hero-init printed so far (its log lines). */
  output(): string;
  stop(): Promise<void>;
}

/** hero-init's VmRSS in MB. */
export function rssMB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8")
      .split(" ")
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** The pid of hero-init below `root` (unshare → sh → hero-init). */
function findHeroInit(root: number): number | undefined {
  const todo = [root];
  while (todo.length) {
    const p = todo.shift() as number;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, "utf8").startsWith(`${BIN}\0init`)) return p;
    } catch {
      // gone
    }
    todo.push(...children(p));
  }
  return undefined;
}

/**
 * Starts hero-init with `services` (name → YAML, or made from the daemon's
 * temporary directory); resolves once its socket answers.
 */
export async function startDaemon(
  services: Record<string, string> | ((dir: string) => Record<string, string>),
): Promise<Daemon> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run bash scripts/build.sh`);
  if (Bun.spawnSync(["sh", "-c", "command -v unshare"]).exitCode !== 0)
    throw new Error("unshare (util-linux) is missing");
  const dir = mkdtempSync(join(tmpdir(), "hero-attack-"));
  const etc = join(dir, "zinit");
  const sock = join(dir, "zinit.sock");
  mkdirSync(etc);
  const files = typeof services === "function" ? services(dir) : services;
  for (const [n, y] of Object.entries(files)) writeFileSync(join(etc, `${n}.yaml`), y);
  const p: Subprocess = Bun.spawn(
    [
      "unshare",
      "--pid",
      "--fork",
      "--kill-child",
      "--mount-proc",
      "--",
      "sh",
      "-c",
      `"$@"; true`,
      "sh",
      BIN,
      "init",
      "-c",
      etc,
      "-s",
      sock,
    ],
    { stdout: "ignore", stderr: "pipe" },
  );
  let out = "";
  (async () => {
    for await (const c of p.stderr as ReadableStream<Uint8Array>)
      out += new TextDecoder().decode(c);
  })();
  const stop = async () => {
    p.kill("SIGKILL");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 30_000;
    let pid: number | undefined;
    while (!(pid && existsSync(sock) && (await rawRequest(sock, "list\n", 5000)).includes("ok"))) {
      if (Date.now() > deadline)
        throw new Error(`hero-init did not answer on its socket within 30 s:\n${out}`);
      if (p.exitCode !== null) throw new Error(`hero-init exited:\n${out}`);
      pid ??= findHeroInit(p.pid);
      await Bun.sleep(100);
    }
    return { dir, sock, pid, output: () => out, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Sends `line` on a fresh connection; resolves with what came back until the server closed or `ms` passed. */
export function rawRequest(sock: string, line: string, ms: number): Promise<string> {
  return new Promise((resolve) => {
    let got = "";
    const c = createConnection(sock);
    const done = () => {
      clearTimeout(t);
      c.destroy();
      resolve(got);
    };
    const t = setTimeout(done, ms);
    c.on("data", (d) => {
      got += d.toString();
    });
    c.on("close", done);
    c.on("error", done);
    c.write(line);
  });
}

/** Times a legacy `status NAME` request; null when no answer came within `ms`. */
export async function timedStatus(sock: string, name: string, ms: number): Promise<number | null> {
  const t0 = performance.now();
  const r = await rawRequest(sock, `status ${name}\n`, ms);
  return r.includes('"state":"ok"') ? performance.now() - t0 : null;
}
