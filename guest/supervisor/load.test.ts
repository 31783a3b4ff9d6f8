import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { monitorDir, monitorDirGradually, readServiceDir } from "./load.ts";
import type { Supervisor } from "./supervisor.ts";

const root = mkdtempSync(join(tmpdir(), "hero-load-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("readServiceDir: only regular files, every other entry reported", () => {
  const dir = join(root, "zinit");
  mkdirSync(dir);
  writeFileSync(join(root, "outside.yaml"), "exec: /bin/evil\n");
  writeFileSync(join(dir, "good.yaml"), "exec: /bin/true\n");
  symlinkSync(join(root, "outside.yaml"), join(dir, "link.yaml"));
  symlinkSync("good.yaml", join(dir, "inner-link.yaml"));
  symlinkSync(join(root, "missing.yaml"), join(dir, "dangling.yaml"));
  mkdirSync(join(dir, "adir.yaml"));
  Bun.spawnSync(["mkfifo", join(dir, "fifo.yaml")]);
  writeFileSync(join(dir, "big.yaml"), `exec: x\n#${"c".repeat(300_000)}\n`);
  writeFileSync(join(dir, "__proto__.yaml"), "exec: /bin/true\n");
  const loaded = Object.fromEntries(readServiceDir(dir).map((l) => [l.name, l]));

  test("a regular file loads", () => {
    expect(loaded.good && "spec" in loaded.good).toBe(true);
  });

  test("symlinks are refused, inside or outside the directory, and never read", () => {
    for (const n of ["link", "inner-link", "dangling"]) {
      const l = loaded[n];
      expect(l && "error" in l ? l.error.toString() : "").toBe(
        `${join(dir, `${n}.yaml`)}: is a symlink; only regular files are read`,
      );
    }
  });

  test("directories and FIFOs are refused (a FIFO never blocks the loader)", () => {
    expect(String(loaded.adir && "error" in loaded.adir && loaded.adir.error)).toMatch(
      /is a directory/,
    );
    expect(String(loaded.fifo && "error" in loaded.fifo && loaded.fifo.error)).toMatch(
      /is a special file/,
    );
  });

  test("size and reserved names", () => {
    expect(String(loaded.big && "error" in loaded.big && loaded.big.error)).toMatch(/limit 262144/);
    const proto = readServiceDir(dir).find((l) => l.name === "__proto__");
    expect(proto && "error" in proto && proto.error.message).toMatch(/not a valid service name/);
  });
});

/** A supervisor that only records what the loader asks of it. */
function recorder() {
  const calls: string[] = [];
  const names = new Set<string>();
  const state = { shuttingDown: false };
  const sup = {
    isShuttingDown: () => state.shuttingDown,
    has: (n: string) => names.has(n),
    monitor: (n: string) => {
      names.add(n);
      calls.push(`monitor ${n}`);
    },
    addBroken: (n: string) => {
      names.add(n);
      calls.push(`broken ${n}`);
    },
  } as unknown as Supervisor;
  return { sup, calls, names, state };
}

describe("monitorDirGradually: PID 1's boot loads its services between requests", () => {
  const dir = join(root, "gradual");
  mkdirSync(dir);
  for (let i = 0; i < 5; i++) writeFileSync(join(dir, `s${i}.yaml`), "exec: /bin/true\n");
  writeFileSync(join(dir, "bad.yaml"), "exec: [\n");

  test("the same services as monitorDir, in the same order, the invalid one shown", async () => {
    const sync = recorder();
    monitorDir(sync.sup, dir);
    const gradual = recorder();
    const loaded = await monitorDirGradually(gradual.sup, dir);
    expect(gradual.calls).toEqual(sync.calls);
    expect(gradual.calls).toContain("broken bad");
    expect(loaded.map((l) => l.name)).toEqual(["bad", "s0", "s1", "s2", "s3", "s4"]);
  });

  test("a timer queued while they load runs before the last one is monitored", async () => {
    const r = recorder();
    const done = monitorDirGradually(r.sup, dir);
    // What a request arriving now stands for: it runs between two services, not after all six.
    let seen = -1;
    setTimeout(() => {
      seen = r.names.size;
    }, 0);
    await done;
    expect(seen).toBeGreaterThanOrEqual(0);
    expect(seen).toBeLessThan(6);
    expect(r.names.size).toBe(6);
  });

  test("a shutdown that starts while they load stops the loading (no refused starts)", async () => {
    const r = recorder();
    const done = monitorDirGradually(r.sup, dir);
    setTimeout(() => {
      r.state.shuttingDown = true;
    }, 0);
    const loaded = await done;
    expect(r.names.size).toBeLessThan(6);
    expect(loaded).toHaveLength(r.names.size);
  });

  test("a name already monitored (zinit monitor during boot) is left as it is", async () => {
    const r = recorder();
    r.names.add("s2");
    await monitorDirGradually(r.sup, dir);
    expect(r.calls).not.toContain("monitor s2");
    expect(r.calls).toHaveLength(5);
  });
});
