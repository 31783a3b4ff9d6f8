import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HeroError } from "../lib/errors.ts";
import { errorExit, positive } from "./job.ts";

const MAIN = join(import.meta.dir, "main.ts");
const dir = mkdtempSync(join(tmpdir(), "hero-jobcli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (...args: string[]) => {
  const p = Bun.spawnSync([process.execPath, MAIN, "job", "run", ...args], {
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode, out: p.stdout.toString(), err: p.stderr.toString() };
};

const config = (name: string, text: string) => {
  const f = join(dir, `${name}.toml`);
  writeFileSync(f, text);
  return f;
};

describe("hero-init job run, before anything boots", () => {
  test("an invalid [job] exits 3 (runner configuration error), naming the field; nothing is deployed", () => {
    const r = cli(config("bad", "[job]\ncommand = []\n"), "--out", join(dir, "out"));
    expect(r.code).toBe(3);
    expect(r.err).toMatch(/job\.command: must not be empty/);
    expect(existsSync(join(dir, "out", "bad"))).toBe(false);
    expect(cli(config("nojob", 'hostname = "x"\n'), "--out", join(dir, "out")).code).toBe(3);
    expect(cli(config("syntax", "[job\n"), "--out", join(dir, "out")).code).toBe(3);
  });

  test("a token already expired, or living beyond the cap, exits 1", () => {
    const past = config("past", '[job]\ncommand = ["true"]\nexpires = 2020-01-01T00:00:00Z\n');
    expect(cli(past, "--out", join(dir, "out")).code).toBe(1);
    const far = new Date(Date.now() + 2 * 3600_000).toISOString();
    const r = cli(config("far", `[job]\ncommand = ["true"]\nexpires = ${far}\n`), "--out", dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/more than 60 min away/);
  });

  test("usage errors exit 64, not 2 (2 is a job's 'runner download failed')", () => {
    const f = config("ok", '[job]\ncommand = ["true"]\n');
    expect(cli(f).code).toBe(64);
    expect(cli(f, "--out", dir, "--deadline", "soon").code).toBe(64);
    expect(cli(f, "--out", dir, "--count", "0").code).toBe(64);
    expect(cli(f, "--out", dir, "--name", "../x").code).toBe(64);
  });

  test("the pure parts", () => {
    expect(positive("2.5", "--deadline")).toBe(2.5);
    expect(() => positive("1.5", "--count", true)).toThrow(/whole number/);
    expect(errorExit(new HeroError("job-token", "x"))).toBe(1);
    expect(errorExit(new HeroError("schema", "x"))).toBe(3);
    expect(errorExit(new HeroError("job.qemu", "x"))).toBe(70);
  });
});
