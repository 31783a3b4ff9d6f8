/**
 * The real supervisor for attack tests: test/helpers/init-daemon.ts's
 * daemon (dist/hero-init in `init` mode in a pid namespace of its own, with
 * the given service files and its control socket in a temporary directory),
 * plus what the attacks measure: hero-init's own pid (for its RSS) and
 * requests timed by the caller. Needs `unshare` and a built dist/: fails
 * loudly without them.
 */
import { readFileSync } from "node:fs";
import { BIN, rawExchange, startDaemon as startInit } from "../helpers/init-daemon.ts";

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
  const d = await startInit(({ dir }) =>
    typeof services === "function" ? services(dir) : services,
  );
  const pid = findHeroInit(d.proc.pid);
  if (pid === undefined) {
    await d.stop();
    throw new Error(`hero-init answers on its socket but is not below pid ${d.proc.pid}`);
  }
  return { dir: d.dir, sock: d.sock, pid, output: d.out, stop: d.stop };
}

/** Sends `line` on a fresh connection; resolves with what came back until the server closed or `ms` passed. */
export async function rawRequest(sock: string, line: string, ms: number): Promise<string> {
  return (await rawExchange(sock, line, true, ms)).got;
}

/** Times a legacy `status NAME` request; null when no answer came within `ms`. */
export async function timedStatus(sock: string, name: string, ms: number): Promise<number | null> {
  const t0 = performance.now();
  const r = await rawRequest(sock, `status ${name}\n`, ms);
  return r.includes('"state":"ok"') ? performance.now() - t0 : null;
}
