import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readServiceDir } from "./load.ts";

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
