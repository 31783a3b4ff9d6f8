/**
 * exec.ts: commandError (what a missing or unrunnable command answers when
 * the exec helper starts it), and execs in a cgroup of their own on a real
 * cgroup2 subtree (`hero-exec-test-<pid>`, root only) served by the real
 * agent: with the exec helper (joined before exec) and without it (the pid
 * moved right after the spawn), exit codes and output unchanged, a timeout
 * reaching a child that called setsid, and a finished command's background
 * child left running in its group until it exits.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { AgentClient } from "../../host/agent-client.ts";
import {
  AGENT_EXEC_DIR,
  CGROUP_ROOT,
  execGroupsDir,
  pidsIn,
  removeGroupDir,
  setCgroupRoot,
} from "../supervisor/cgroup.ts";
import { cgroupExecGroups, commandError, type ExecGroups, type ExecWsData } from "./exec.ts";
import { createAgent } from "./server.ts";

setDefaultTimeout(30_000);
const dir = mkdtempSync(join(tmpdir(), "hero-exec-test-"));
const PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

describe("commandError", () => {
  test("a bare name is looked up in PATH", () => {
    expect(commandError("sh", "/", PATH)).toBeNull();
    expect(commandError("no-such-command-hero", "/", PATH)).toEqual({
      code: 127,
      error: "no-such-command-hero: command not found",
    });
    expect(commandError("sh", "/", "/nonexistent")?.code).toBe(127);
  });

  test("a path: missing 127, not executable or a directory 126", () => {
    const f = join(dir, "noexec.sh");
    writeFileSync(f, "#!/bin/sh\n", { mode: 0o644 });
    chmodSync(f, 0o644);
    expect(commandError(f, "/", PATH)).toEqual({
      code: 126,
      error: `${f}: cannot execute: permission denied`,
    });
    expect(commandError(dir, "/", PATH)?.code).toBe(126);
    expect(commandError(join(dir, "missing"), "/", PATH)?.code).toBe(127);
    expect(commandError("./noexec.sh", dir, PATH)?.code).toBe(126);
    expect(commandError("/bin/sh", "/", PATH)).toBeNull();
  });
});

const CG_PARENT = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].find(
  (p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`),
);
const cgroot = CG_PARENT ? `${CG_PARENT}/hero-exec-test-${process.pid}` : "";
const PREINIT = join(import.meta.dir, "../../dist/preinit");
const TOKEN = "0123456789abcdef0123456789abcdef";
const previousRoot = CGROUP_ROOT;
const servers: Server<ExecWsData>[] = [];
const PREFIX = String(300_000 + (process.pid % 600_000));
const S = (n: number) => `${PREFIX}${n}`;
const pids = (n: number) =>
  Bun.spawnSync(["pgrep", "-x", "-f", `sleep ${S(n)}`])
    .stdout.toString()
    .split("\n")
    .filter(Boolean)
    .map(Number);

function clientWith(groups: ExecGroups | null): AgentClient {
  const agent = createAgent({ token: TOKEN, execGroups: groups, tuning: { killGraceMs: 300 } });
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req, srv) => agent.fetch(req, srv),
    websocket: agent.websocket,
  });
  servers.push(server);
  return new AgentClient({ url: `http://127.0.0.1:${server.port}`, token: TOKEN });
}

async function run(c: AgentClient, argv: string[], extra: Record<string, unknown> = {}) {
  let stdout = "";
  let stderr = "";
  const exit = await c.exec(
    { argv, ...extra },
    {
      stdout: (b) => {
        stdout += Buffer.from(b).toString();
      },
      stderr: (b) => {
        stderr += Buffer.from(b).toString();
      },
    },
  );
  return { exit, stdout, stderr };
}

async function gone(n: number, ms = 10_000): Promise<number[]> {
  const end = Date.now() + ms;
  while (pids(n).length && Date.now() < end) await Bun.sleep(50);
  return pids(n);
}

describe("exec in a cgroup of its own", () => {
  let withHelper: AgentClient;
  let withoutHelper: AgentClient;
  beforeAll(() => {
    if (!CG_PARENT) throw new Error("these tests need a writable cgroup2 hierarchy (root)");
    if (!existsSync(PREINIT)) throw new Error(`${PREINIT} is missing: run scripts/build.sh`);
    setCgroupRoot(cgroot);
    symlinkSync(PREINIT, join(dir, "hero-exec"));
    const a = cgroupExecGroups(join(dir, "hero-exec"));
    const b = cgroupExecGroups(join(dir, "no-helper-here"));
    if (!a || !b) throw new Error(`cgroup exec groups unavailable under ${cgroot}`);
    expect(a.helper).toBe(join(dir, "hero-exec"));
    expect(b.helper).toBeNull();
    withHelper = clientWith(a);
    withoutHelper = clientWith(b);
  });
  afterAll(() => {
    for (const s of servers) s.stop(true);
    for (const n of [1, 2, 3, 4, 5])
      for (const p of pids(n))
        try {
          process.kill(p, "SIGKILL");
        } catch {}
    setCgroupRoot(previousRoot);
    rmSync(dir, { recursive: true, force: true });
    if (!cgroot || !existsSync(cgroot)) return;
    const execs = join(cgroot, AGENT_EXEC_DIR);
    for (const d of existsSync(execs) ? readdirSync(execs) : []) removeGroupDir(join(execs, d));
    removeGroupDir(execs);
    removeGroupDir(cgroot);
  });

  test("through the helper: exit codes, output and start errors are what they are without it", async () => {
    const r = await run(withHelper, ["sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toEqual({ exit: { code: 3 }, stdout: "out\n", stderr: "err\n" });
    const own = await run(withHelper, ["sh", "-c", "cat /proc/self/cgroup"]);
    expect(own.stdout).toMatch(/\/agent:exec\/exec-\d+\n/);
    expect((await run(withHelper, ["no-such-command-hero"])).exit).toEqual({
      code: 127,
      error: "no-such-command-hero: command not found",
    });
    const f = join(dir, "noexec-2.sh");
    writeFileSync(f, "#!/bin/sh\n", { mode: 0o644 });
    expect((await run(withHelper, [f])).exit.code).toBe(126);
    expect((await run(withHelper, ["sh", "-c", "kill -9 $$"])).exit).toEqual({
      code: 137,
      signal: "SIGKILL",
    });
  });

  test("without the helper the pid is moved right after the spawn; a timeout still reaches a setsid'd child", async () => {
    const r = await run(
      withoutHelper,
      ["sh", "-c", `sleep 0.3; setsid sleep ${S(1)} & cat /proc/self/cgroup; sleep ${S(2)}`],
      { timeout_ms: 1500 },
    );
    expect(r.stdout).toMatch(/\/agent:exec\/exec-\d+\n/);
    expect(r.exit.timed_out).toBe(true);
    expect(await gone(1)).toEqual([]);
    expect(await gone(2)).toEqual([]);
  });

  test("a finished command's background child keeps running in its group; the group goes after it", async () => {
    const r = await run(withHelper, [
      "sh",
      "-c",
      `setsid sleep ${S(3)} </dev/null >/dev/null 2>&1 & echo $!`,
    ]);
    expect(r.exit).toEqual({ code: 0 });
    const bg = pids(3);
    expect(bg.length).toBe(1);
    const groups = readdirSync(execGroupsDir()).filter((n) => n.startsWith("exec-"));
    const holding = groups.filter((g) =>
      pidsIn(join(execGroupsDir(), g)).includes(bg[0] as number),
    );
    expect(holding.length).toBe(1);
    process.kill(bg[0] as number, "SIGKILL");
    expect(await gone(3)).toEqual([]);
    // The next exec sweeps the now empty group.
    await run(withHelper, ["true"]);
    const end = Date.now() + 5000;
    while (existsSync(join(execGroupsDir(), holding[0] as string)) && Date.now() < end) {
      await run(withHelper, ["true"]);
      await Bun.sleep(50);
    }
    expect(existsSync(join(execGroupsDir(), holding[0] as string))).toBe(false);
  });
});
