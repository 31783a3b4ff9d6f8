import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { positiveInt } from "./manifest.ts";

const MAIN = join(import.meta.dir, "main.ts");
const cli = (...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, MAIN, "manifest", ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

describe("hero-init manifest keygen|sign|verify", () => {
  test("keygen (0600, never overwrites), sign, verify; a changed file fails with exit 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-mcli-"));
    try {
      expect(cli("keygen", "--out", dir).code).toBe(0);
      expect(statSync(join(dir, "hero.key")).mode & 0o777).toBe(0o600);
      const again = cli("keygen", "--out", dir);
      expect(again.code).toBe(2);
      expect(again.err).toContain("refusing to overwrite");
      const f = join(dir, "bootstrapper.toml");
      writeFileSync(f, "version = 1\n");
      expect(cli("sign", f, "--key", join(dir, "hero.key")).code).toBe(0);
      const ok = cli("verify", f, "--pub", join(dir, "hero.pub"), "--json");
      expect(ok.code).toBe(0);
      expect(JSON.parse(ok.out)).toMatchObject({ ok: true, prehashed: true });
      // Debian's minisign verifies what the CLI signed (setup.sh installs it: no silent pass without it).
      const m = Bun.spawnSync(["minisign", "-V", "-p", join(dir, "hero.pub"), "-m", f]);
      expect(m.exitCode).toBe(0);
      writeFileSync(f, "version = 2\n");
      const bad = cli("verify", f, "--pub", join(dir, "hero.pub"));
      expect(bad.code).toBe(1);
      expect(bad.err).toContain("bad signature");
      expect(readFileSync(`${f}.minisig`, "utf8")).toContain("trusted comment: timestamp:");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("keygen creates a missing --out directory 0700 (and its parents)", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-mcli-"));
    try {
      const out = join(dir, "new/keys");
      expect(cli("keygen", "--out", out).code).toBe(0);
      expect(statSync(out).mode & 0o777).toBe(0o700);
      expect(statSync(join(out, "hero.key")).mode & 0o777).toBe(0o600);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("usage errors name what is missing", () => {
    const r = cli("sign", "x");
    expect(r.code).toBe(2);
    expect(r.err).toContain("--key is required");
    expect(cli("frobnicate").code).toBe(2);
  });
});

test("versions are positive integers (pure)", () => {
  expect(positiveInt("7", "--version")).toBe(7);
  for (const bad of ["0", "-1", "1.5", "x", ""])
    expect(() => positiveInt(bad, "--version", " (higher)")).toThrow(
      "--version must be a positive integer (higher)",
    );
});
