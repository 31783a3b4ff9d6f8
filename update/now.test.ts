import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { UpdateResult } from "./engine.ts";
import { nodePass, takePassLock, type UpdatePass, updateNow } from "./now.ts";

const result = (outcome: UpdateResult["outcome"]): UpdateResult => ({
  outcome,
  changes: [],
  held: [],
  restarted: [],
  requests: 1,
  bytes: 0,
});

/** A pass whose runs finish when the test says so. */
function heldPass() {
  const runs: { check: boolean; finish: (r: UpdateResult) => void }[] = [];
  const run = (check: boolean) =>
    new Promise<UpdateResult>((finish) => {
      runs.push({ check, finish });
    });
  const pass: UpdatePass = { check: () => run(true), apply: () => run(false) };
  return { pass, runs };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hero-now-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("updateNow", () => {
  test("apply or check, and the caller gets the pass's result", async () => {
    const { pass, runs } = heldPass();
    const p = updateNow(pass, { check: true });
    expect(runs.map((r) => r.check)).toEqual([true]);
    runs[0]?.finish(result("available"));
    expect(await p).toEqual({ timedOut: false, result: result("available") });
    const q = updateNow(pass);
    expect(runs[1]?.check).toBe(false);
    runs[1]?.finish(result("updated"));
    expect((await q).timedOut).toBe(false);
  });

  test("a pass longer than the timeout: the caller goes on, the pass is not cancelled", async () => {
    const { pass, runs } = heldPass();
    expect(await updateNow(pass, { timeoutMs: 20 })).toEqual({ timedOut: true });
    expect(runs).toHaveLength(1);
    runs[0]?.finish(result("updated")); // finishes later, nobody waits
  });

  test("a timeout that is not a positive number is refused", async () => {
    const { pass } = heldPass();
    await expect(updateNow(pass, { timeoutMs: 0 })).rejects.toThrow(/not a positive number/);
    await expect(updateNow(pass, { timeoutMs: Number.NaN })).rejects.toThrow(/positive/);
  });
});

describe("nodePass: one pass at a time per state directory", () => {
  test("callers in one process share the running pass", async () => {
    let started = 0;
    let finish: (r: UpdateResult) => void = () => {};
    const pass = nodePass(dir, () => {
      started++;
      return new Promise((r) => {
        finish = r;
      });
    });
    const a = pass.apply();
    const b = pass.apply();
    await Bun.sleep(0);
    await until(() => started === 1);
    finish(result("updated"));
    expect(await a).toEqual(await b);
    expect(started).toBe(1);
    // The lock is released: the next pass runs.
    const c = pass.apply();
    await until(() => started === 2);
    finish(result("up-to-date"));
    expect((await c).outcome).toBe("up-to-date");
    expect(existsSync(join(dir, "pass.lock"))).toBe(false);
  });

  test("a live holder of the lock (another process) is waited for", async () => {
    const file = join(dir, "pass.lock");
    writeFileSync(file, `${process.pid}\n`); // alive: this process stands in for the other one
    let ran = false;
    const pass = nodePass(dir, async () => {
      ran = true;
      return result("up-to-date");
    });
    const p = pass.apply();
    await Bun.sleep(600);
    expect(ran).toBe(false);
    rmSync(file);
    expect((await p).outcome).toBe("up-to-date");
    expect(ran).toBe(true);
  });

  test("a lock left by a dead process is taken over", async () => {
    const file = join(dir, "pass.lock");
    writeFileSync(file, "2147483646\n"); // no such pid
    const release = await takePassLock(dir, { waitMs: 1000 });
    expect(readFileSync(file, "utf8")).toBe(`${process.pid}\n`);
    release();
    writeFileSync(file, "garbage\n");
    (await takePassLock(dir, { waitMs: 1000 }))();
  });

  test("a lock held past the wait is an error naming the holder", async () => {
    writeFileSync(join(dir, "pass.lock"), `${process.pid}\n`);
    await expect(takePassLock(dir, { waitMs: 100, pollMs: 20 })).rejects.toThrow(
      new RegExp(`another update pass \\(pid ${process.pid}\\)`),
    );
  });

  test("directories made only for the lock are removed again (a refused first run leaves no trace)", async () => {
    const state = join(dir, "var/lib/hero-init/update");
    (await takePassLock(state))();
    expect(existsSync(join(dir, "var"))).toBe(false);
  });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await Bun.sleep(5);
  expect(cond()).toBe(true);
}
