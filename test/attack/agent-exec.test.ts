/**
 * Attack test of the guest agent's exec (issue 13, finding 11). The
 * attacker is a command run through the agent (a host tool's script, a CI
 * job's step) that leaves its process group with `setsid`, so that a
 * timeout or a disconnect, which used to signal the process group only,
 * never reaches it: it keeps running in the VM for ever. The defence: each
 * exec gets its own cgroup, joined by the exec helper before the command's
 * first instruction, and a stop kills the whole cgroup (`cgroup.kill`).
 *
 * The agent is served exactly as PID 1 serves it (guest/pid1/agent.ts
 * startAgent, with the real exec helper dist/preinit as `hero-exec`), its
 * cgroups under a private cgroup2 subtree `hero-attack-agent-<pid>`. The
 * check is the kernel's: pgrep for a sleep duration unique to this run.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startAgent } from "../../guest/pid1/agent.ts";
import { CGROUP_ROOT, setCgroupRoot } from "../../guest/supervisor/cgroup.ts";
import type { Supervisor } from "../../guest/supervisor/supervisor.ts";
import { AgentClient } from "../../host/agent-client.ts";
import { defaultVmConfig } from "../../lib/vm-config.ts";
import { until } from "../helpers/poll.ts";
import { freePort } from "../vm/qemu.ts";

setDefaultTimeout(60_000);
const ROOT = join(import.meta.dir, "../..");
const PREINIT = join(ROOT, "dist/preinit");
const TOKEN = "attack-agent-exec-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "hero-attack-agent-"));
const CG_PARENT = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].find(
  (p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`),
);
const cgroot = CG_PARENT ? `${CG_PARENT}/hero-attack-agent-${process.pid}` : "";
let client: AgentClient;
let port = 0;
const previous = { root: CGROUP_ROOT, helper: process.env.HERO_EXEC_HELPER };

// Sleep durations unique to this run, so pgrep never sees another run's processes.
const PREFIX = String(200_000 + (process.pid % 700_000));
const S = (n: number) => `${PREFIX}${n}`;
const pids = (n: number) =>
  Bun.spawnSync(["pgrep", "-x", "-f", `sleep ${S(n)}`])
    .stdout.toString()
    .split("\n")
    .filter(Boolean)
    .map(Number);

/** Waits (generously: the machine is loaded) until no `sleep S(n)` is left; returns what is left. */
async function survivors(n: number, ms = 15_000): Promise<number[]> {
  const end = Date.now() + ms;
  for (;;) {
    const left = pids(n);
    if (left.length === 0 || Date.now() > end) return left;
    await Bun.sleep(100);
  }
}

const waitFor = <T>(fn: () => T | undefined | false, ms = 15_000) =>
  until("the agent's child", fn, ms, 50);

beforeAll(async () => {
  // Fail loudly: without cgroup2 or the helper this test would prove nothing.
  if (!CG_PARENT) throw new Error("this attack test needs a writable cgroup2 hierarchy (root)");
  if (!existsSync(PREINIT)) throw new Error(`${PREINIT} is missing: run scripts/build.sh`);
  symlinkSync(PREINIT, join(dir, "hero-exec"));
  process.env.HERO_EXEC_HELPER = join(dir, "hero-exec");
  setCgroupRoot(cgroot);
  writeFileSync(join(dir, "agent.token"), `${TOKEN}\n`, { mode: 0o600 });
  port = await freePort();
  const sup = { names: () => [], status: () => ({}) } as unknown as Supervisor;
  startAgent(
    {
      ...defaultVmConfig().agent,
      port,
      listen: [],
      token_file: join(dir, "agent.token"),
      vsock: false,
    },
    { sup, power: () => {}, jobExit: () => null },
  );
  client = new AgentClient({ url: `http://127.0.0.1:${port}`, token: TOKEN });
});

afterAll(() => {
  // Other test files may run in this process: leave the globals as they were.
  setCgroupRoot(previous.root);
  if (previous.helper === undefined) delete process.env.HERO_EXEC_HELPER;
  else process.env.HERO_EXEC_HELPER = previous.helper;
  for (const n of [1, 2, 3, 4, 5, 6, 7])
    for (const p of pids(n)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {}
    }
  if (cgroot && existsSync(cgroot)) {
    const execs = join(cgroot, "agent:exec");
    for (const d of existsSync(execs) ? readdirSync(execs) : []) {
      try {
        rmdirSync(join(execs, d));
      } catch {}
    }
    for (const d of [execs, cgroot]) {
      try {
        rmdirSync(d);
      } catch {}
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("agent exec: a command that leaves its process group", () => {
  test("timeout kills the setsid'd child too (and a TERM-ignoring one)", async () => {
    const exit = await client.exec({
      argv: [
        "sh",
        "-c",
        `setsid sleep ${S(1)} & setsid sh -c 'trap "" TERM HUP; exec sleep ${S(2)}' & sleep ${S(3)}`,
      ],
      timeout_ms: 500,
    });
    expect(exit.timed_out).toBe(true);
    expect(exit.code).toBe(124);
    expect(await survivors(3)).toEqual([]);
    expect(await survivors(1)).toEqual([]);
    expect(await survivors(2)).toEqual([]);
  });

  test("the escaped child is in the exec's own cgroup from its start; a disconnect kills it", async () => {
    const ac = new AbortController();
    let said = "";
    const running = client
      .exec(
        { argv: ["sh", "-c", `setsid sleep ${S(4)} & echo started; sleep ${S(5)}`] },
        {
          stdout: (b) => {
            said += Buffer.from(b).toString();
          },
          signal: ac.signal,
        },
      )
      .catch(() => null);
    await waitFor(() => said.includes("started"));
    const escaped = await waitFor(() => pids(4)[0]);
    const itsGroup = readFileSync(`/proc/${escaped}/cgroup`, "utf8");
    ac.abort();
    await running;
    expect(await survivors(5)).toEqual([]);
    expect(await survivors(4)).toEqual([]);
    // Not in the agent's cgroup, not in the root: in its own exec group.
    expect(itsGroup).toMatch(/\/agent:exec\/exec-\d+\n/);
  });

  test("closing an interactive (TTY) session kills the setsid'd child too", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/agent/v1/exec/ws`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    } as unknown as string[]);
    ws.binaryType = "arraybuffer";
    let out = "";
    ws.onmessage = (m) => {
      if (typeof m.data !== "string") out += Buffer.from(m.data as ArrayBuffer).toString();
    };
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("ws error"));
    });
    ws.send(
      JSON.stringify({
        argv: ["sh", "-c", `setsid sleep ${S(6)} & echo started; sleep ${S(7)}`],
        tty: true,
      }),
    );
    await waitFor(() => out.includes("started"));
    await waitFor(() => pids(6).length > 0);
    ws.close();
    expect(await survivors(7)).toEqual([]);
    expect(await survivors(6)).toEqual([]);
  });

  test("no exec group is left behind once its processes are gone", async () => {
    const execs = join(cgroot, "agent:exec");
    expect(existsSync(execs)).toBe(true);
    await waitFor(() => readdirSync(execs).filter((d) => d.startsWith("exec-")).length === 0);
  });
});
