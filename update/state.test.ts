import { afterAll, describe, expect, test } from "bun:test";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  hasState,
  installedVersions,
  keepMachineId,
  markBad,
  readMachineId,
  readState,
  withBad,
  writeState,
} from "./state.ts";

const top = mkdtempSync(join(tmpdir(), "hero-update-state-"));
afterAll(() => rmSync(top, { recursive: true, force: true }));
let n = 0;
const fresh = () => join(top, String(n++));

describe("state.json", () => {
  test("none yet, or unreadable, is zero trust", () => {
    const d = fresh();
    expect(hasState(d)).toBe(false);
    expect(readState(d)).toEqual({ schema: 1, version: 0, keysVersion: 0 });
    mkdirSync(d);
    writeFileSync(join(d, "state.json"), "{not json");
    expect(readState(d)).toEqual({ schema: 1, version: 0, keysVersion: 0 });
  });

  test("written 0600 in a 0700 directory, read back; an older file without keysVersion reads as 0", () => {
    const d = fresh();
    writeState(d, { schema: 1, version: 4, keysVersion: 2, etag: '"e"' });
    expect(hasState(d)).toBe(true);
    expect(statSync(join(d, "state.json")).mode & 0o777).toBe(0o600);
    expect(statSync(d).mode & 0o777).toBe(0o700 & ~process.umask());
    expect(readState(d)).toEqual({ schema: 1, version: 4, keysVersion: 2, etag: '"e"' });
    writeFileSync(join(d, "state.json"), JSON.stringify({ schema: 1, version: 3 }));
    expect(readState(d).keysVersion).toBe(0);
  });

  test("markBad adds name@version once, keeping the rest of the state", () => {
    const d = fresh();
    writeState(d, { schema: 1, version: 9, keysVersion: 1 });
    markBad(d, "hero-init", "1.2.0");
    markBad(d, "hero-init", "1.2.0");
    expect(readState(d)).toEqual({
      schema: 1,
      version: 9,
      keysVersion: 1,
      bad: ["hero-init@1.2.0"],
    });
  });

  test("withBad (pure): each once, newest last, the oldest forgotten past 100", () => {
    expect(withBad(undefined, ["a@1"])).toEqual(["a@1"]);
    expect(withBad(["a@1", "b@1"], ["a@1", "c@1"])).toEqual(["a@1", "b@1", "c@1"]);
    const many = Array.from({ length: 100 }, (_, i) => `x@${i}`);
    const next = withBad(many, ["y@1"]);
    expect(next.length).toBe(100);
    expect(next[0]).toBe("x@1");
    expect(next.at(-1)).toBe("y@1");
  });
});

describe("installed versions", () => {
  test("pkgs/<name>/current → version; a binary without a current link is not listed", () => {
    const pkgs = fresh();
    mkdirSync(join(pkgs, "app/1.0.0"), { recursive: true });
    symlinkSync("1.0.0", join(pkgs, "app/current"));
    mkdirSync(join(pkgs, "loose/2.0.0"), { recursive: true });
    expect(installedVersions(pkgs)).toEqual(new Map([["app", "1.0.0"]]));
    expect(installedVersions(join(pkgs, "missing"))).toEqual(new Map());
  });
});

describe("machine id", () => {
  test("/etc/machine-id first, then the kept one; none → undefined", () => {
    const d = fresh();
    const etc = join(top, `etc-${n++}`);
    expect(readMachineId(d, etc)).toBeUndefined();
    keepMachineId(d, "kept-id");
    expect(readMachineId(d, etc)).toBe("kept-id");
    writeFileSync(etc, "etc-id\n");
    expect(readMachineId(d, etc)).toBe("etc-id");
  });

  test("a kept id is never replaced", () => {
    const d = fresh();
    keepMachineId(d, "first");
    keepMachineId(d, "second");
    expect(readFileSync(join(d, "machine-id"), "utf8")).toBe("first\n");
    expect(statSync(join(d, "machine-id")).mode & 0o777).toBe(0o600);
  });
});
