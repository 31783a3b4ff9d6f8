/**
 * cgroup.ts: the pure parsers, and the agent's exec groups on a real
 * cgroup2 subtree (`hero-cg-test-<pid>`, root only): one fresh group per
 * exec, empty ones swept, and killTree ending a tree that left its process
 * group, with cgroup.kill and with the freeze-and-kill fallback of kernels
 * before 5.14.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { SERVICE_NAME_RE } from "../../lib/service-spec.ts";
import {
  AGENT_EXEC_DIR,
  CGROUP_ROOT,
  createExecGroup,
  execGroupsDir,
  joinGroupDir,
  killTree,
  parseCgroupEvents,
  parsePids,
  pidsIn,
  removeGroupDir,
  setCgroupRoot,
} from "./cgroup.ts";

describe("pure", () => {
  test("parsePids", () => {
    expect(parsePids("12\n345\n")).toEqual([12, 345]);
    expect(parsePids("")).toEqual([]);
    expect(parsePids("7\n\nx\n")).toEqual([7]);
  });

  test("parseCgroupEvents", () => {
    expect(parseCgroupEvents("populated 1\nfrozen 0\n")).toEqual({ populated: 1, frozen: 0 });
    expect(parseCgroupEvents("")).toEqual({});
  });

  test("the exec groups' directory can never be a service's group", () => {
    expect(SERVICE_NAME_RE.test(AGENT_EXEC_DIR)).toBe(false);
  });
});

const CG_PARENT = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].find(
  (p) => existsSync(`${p}/cgroup.procs`) && existsSync(`${p}/cgroup.controllers`),
);
const root = CG_PARENT ? `${CG_PARENT}/hero-cg-test-${process.pid}` : "";
const before = CGROUP_ROOT;
const spawned: number[] = [];

describe("exec groups on a real cgroup2 subtree", () => {
  beforeAll(() => {
    if (!CG_PARENT) throw new Error("these tests need a writable cgroup2 hierarchy (root)");
    setCgroupRoot(root);
  });
  afterAll(() => {
    for (const p of spawned)
      for (const target of [-p, p])
        try {
          process.kill(target, "SIGKILL");
        } catch {}
    setCgroupRoot(before);
    if (!root || !existsSync(root)) return;
    const execs = join(root, AGENT_EXEC_DIR);
    for (const d of existsSync(execs) ? readdirSync(execs) : []) removeGroupDir(join(execs, d));
    removeGroupDir(execs);
    removeGroupDir(root);
  });

  test("one fresh group per exec; empty ones are swept, busy ones stay and are never reused", async () => {
    const a = createExecGroup() as string;
    const b = createExecGroup() as string;
    expect(a).toStartWith(`${root}/${AGENT_EXEC_DIR}/exec-`);
    expect(b).not.toBe(a);
    // The next name is taken by a group with a process in it (left from before a re-exec).
    const next = Number(/exec-(\d+)$/.exec(b)?.[1]) + 1;
    const busy = join(execGroupsDir(), `exec-${next}`);
    mkdirSync(busy);
    const p = Bun.spawn(["sleep", "30"]);
    spawned.push(p.pid);
    expect(joinGroupDir(busy, p.pid)).toBe(true);
    // The next create sweeps the empty a and b, keeps the busy one, and skips its name.
    const c = createExecGroup() as string;
    expect(c).toBe(join(execGroupsDir(), `exec-${next + 1}`));
    expect(
      readdirSync(execGroupsDir())
        .filter((n) => n.startsWith("exec-"))
        .sort(),
    ).toEqual([`exec-${next}`, `exec-${next + 1}`]);
    expect(removeGroupDir(busy)).toBe(false);
    p.kill("SIGKILL");
    await p.exited;
    const end = Date.now() + 5000;
    while (pidsIn(busy).length && Date.now() < end) await Bun.sleep(20);
    expect(removeGroupDir(busy)).toBe(true);
  });

  for (const useKillFile of [true, false]) {
    test(`killTree ends a forking tree that left its process group (${useKillFile ? "cgroup.kill" : "freeze + kill"})`, async () => {
      const g = createExecGroup() as string;
      // A setsid'd, TERM-ignoring loop that keeps forking, started inside the group.
      const p = Bun.spawn(
        [
          "sh",
          "-c",
          `echo $$ > ${g}/cgroup.procs; setsid sh -c 'trap "" TERM; while :; do sleep 0.01 & wait; done' & sleep 30`,
        ],
        { detached: true },
      );
      spawned.push(p.pid);
      const end = Date.now() + 10_000;
      while (pidsIn(g).length < 3 && Date.now() < end) await Bun.sleep(20);
      expect(pidsIn(g).length).toBeGreaterThanOrEqual(3);
      expect(await killTree(g, { useKillFile, timeoutMs: 15_000 })).toBe(true);
      expect(pidsIn(g)).toEqual([]);
      await p.exited;
      expect(removeGroupDir(g)).toBe(true);
      expect(existsSync(g)).toBe(false);
    });
  }

  test("killTree on a missing group is true (nothing to kill) and never throws", async () => {
    expect(await killTree(join(root, "no-such-group"))).toBe(true);
    expect(pidsIn(join(root, "no-such-group"))).toEqual([]);
    expect(removeGroupDir(join(root, "no-such-group"))).toBe(true);
  });
});
