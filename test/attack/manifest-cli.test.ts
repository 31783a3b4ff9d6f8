/**
 * Attack test of `hero-init manifest keygen` (issue 13, finding 13): the
 * careless operator follows the README (`--out keys` in a fresh checkout,
 * where keys/ does not exist yet). Through the real CLI: the directory is
 * created 0700, the secret key 0600, and a second run never overwrites it.
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const MAIN = join(import.meta.dir, "../../cli/main.ts");
const cli = (cwd: string, ...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, MAIN, "manifest", ...args], {
    cwd,
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "hero-keygen-"));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test("keygen --out keys (as the README shows) creates keys/ 0700 and never overwrites the key", () => {
  const r = cli(dir, "keygen", "--out", "keys");
  expect(r.err).not.toContain("ENOENT");
  expect(r.code).toBe(0);
  expect(statSync(join(dir, "keys")).mode & 0o777).toBe(0o700);
  expect(statSync(join(dir, "keys/hero.key")).mode & 0o777).toBe(0o600);
  expect(statSync(join(dir, "keys/hero.pub")).mode & 0o777).toBe(0o644);
  const secret = readFileSync(join(dir, "keys/hero.key"));
  const again = cli(dir, "keygen", "--out", "keys");
  expect(again.code).toBe(2);
  expect(again.err).toContain("refusing to overwrite");
  expect(readFileSync(join(dir, "keys/hero.key"))).toEqual(secret);
  // The key works: sign and verify a file with it.
  writeFileSync(join(dir, "bootstrapper.toml"), "version = 1\n");
  expect(cli(dir, "sign", "bootstrapper.toml", "--key", "keys/hero.key").code).toBe(0);
  expect(cli(dir, "verify", "bootstrapper.toml", "--pub", "keys/hero.pub").code).toBe(0);
});

test("missing parents are created too; a file in the way is a clear error", () => {
  expect(cli(dir, "keygen", "--out", "a/b/keys").code).toBe(0);
  expect(statSync(join(dir, "a/b/keys/hero.key")).mode & 0o777).toBe(0o600);
  writeFileSync(join(dir, "plain"), "x");
  const r = cli(dir, "keygen", "--out", "plain");
  expect(r.code).toBe(2);
  expect(r.err).toContain("not a directory");
});
