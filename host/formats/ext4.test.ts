/**
 * The ext4 format's command building, pure and against the installed
 * debugfs (e2fsprogs): what it parses as one argument, and what it prints.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHeroError } from "../../lib/errors.ts";
import {
  debugfsArg,
  debugfsErrors,
  debugfsName,
  debugfsScript,
  ext4Format,
  parseStat,
} from "./ext4.ts";
import type { WriteOp } from "./write-ops.ts";

const tmp = mkdtempSync(join(tmpdir(), "hero-ext4-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function sh(cmd: string[], cwd?: string): { out: string; err: string } {
  const p = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
  return { out: p.stdout.toString(), err: p.stderr.toString() };
}

function mkimage(name: string, src: string): string {
  const img = join(tmp, name);
  sh(["mke2fs", "-q", "-t", "ext4", "-d", src, img, "8M"]);
  return img;
}

const ALLOWED_NAME = "AZaz09._+@,:=~-";

describe("debugfsName / debugfsArg", () => {
  test("names from a real rootfs pass", () => {
    for (const n of ["usr", "x86_64-linux-gnu", "getty@.service", "libc.so.6", "a,b:c=d~e+f"])
      expect(debugfsName(n)).toBeNull();
  });

  test("anything debugfs's parser could misread is refused", () => {
    for (const n of [
      "a b",
      'a"b',
      "a\\b",
      "a\nb",
      "a\rb",
      "a\tb",
      "",
      ".",
      "..",
      "<12>",
      "a#b",
      "ä",
      "a\u0000b",
    ])
      expect(debugfsName(n)).toContain("cannot be passed to debugfs");
  });

  test("arguments: absolute or relative paths of allowed names, never an option", () => {
    for (const a of ["/", "/usr/lib/hero", "preinit", "../lib/x", "1.0.0"])
      expect(debugfsArg(a, "path")).toBe(a);
    for (const a of ["", "-x", "a//b", "/a/", "/a b", "/x\ndump -p /a /b", '/a"b']) {
      let err: unknown = null;
      try {
        debugfsArg(a, "path of /usr/bin/x:");
      } catch (e) {
        err = e;
      }
      expect(isHeroError(err, "input")).toBe(true);
      expect(String(err)).toContain("path of /usr/bin/x:");
      expect(String(err)).not.toContain("\n");
    }
  });
});

describe("debugfsScript", () => {
  const ops: WriteOp[] = [
    { op: "mkdir", path: "/d", entry: "/d", mode: 0o700, uid: 0, gid: 0 },
    { op: "aside", path: "/d/init", to: "/d/init.before-hero", entry: "/sbin/init" },
    {
      op: "file",
      path: "/d/f",
      entry: "/d/f",
      data: new Uint8Array([1]),
      sha256: "x",
      mode: 0o644,
      uid: 0,
      gid: 0,
      replaces: "symlink",
    },
    {
      op: "symlink",
      path: "/d/l",
      entry: "/d/l",
      target: "f",
      uid: 0,
      gid: 0,
      replaces: null,
    },
  ];

  test("one command per line, files by number, no quoting anywhere", () => {
    const { lines, files } = debugfsScript(ops, 7);
    expect(files).toHaveLength(1);
    expect(lines).toContain("mkdir /d");
    expect(lines).toContain("sif /d mode 040700");
    expect(lines).toContain("ln /d/init /d/init.before-hero");
    expect(lines).toContain("rm /d/f");
    expect(lines).toContain("write 0 /d/f");
    expect(lines).toContain("symlink /d/l f");
    expect(lines.join("\n")).not.toMatch(/["\\]/);
  });

  test("an unsafe path or target that got this far is still refused", () => {
    for (const bad of [
      { ...ops[3], path: "/d/x\nrm /etc" },
      { ...ops[3], target: "f\ndump -p /a /b" },
    ] as WriteOp[]) {
      expect(() => debugfsScript([bad], 0)).toThrow(/cannot be passed to debugfs/);
    }
  });

  test("every allowed character reaches the image as one argument (the installed debugfs)", () => {
    const img = mkimage("names.ext4", mkdtempSync(join(tmp, "empty-")));
    const d = `/${ALLOWED_NAME}`;
    const f = `${d}/${ALLOWED_NAME}`;
    const data = new TextEncoder().encode("payload");
    const own = { uid: 0, gid: 0 };
    const { lines, files } = debugfsScript(
      [
        { op: "mkdir", path: d, entry: d, mode: 0o755, ...own },
        { op: "chmod", path: d, entry: d, mode: 0o700, ...own, was: { mode: 0o755, ...own } },
        { op: "file", path: f, entry: f, data, sha256: "", mode: 0o600, ...own, replaces: null },
        { op: "aside", path: f, to: `${f}.before`, entry: f },
        { op: "file", path: f, entry: f, data, sha256: "", mode: 0o644, ...own, replaces: null },
        {
          op: "symlink",
          path: f,
          entry: f,
          target: `../${ALLOWED_NAME}`,
          ...own,
          replaces: "file",
        },
      ],
      0,
    );
    for (const [i, b] of files.entries()) writeFileSync(join(tmp, String(i)), b);
    writeFileSync(join(tmp, "script"), `${lines.join("\n")}\n`);
    const r = sh(["debugfs", "-w", "-f", "script", img], tmp);
    expect(debugfsErrors(r.err)).toEqual([]);
    const ls = sh(["debugfs", "-R", `ls -p ${d}`, img]).out;
    expect(ls).toContain(`/${ALLOWED_NAME}.before/`);
    const stat = (p: string) =>
      parseStat(Bun.spawnSync(["debugfs", "-R", `stat ${p}`, img]).stdout);
    expect(stat(d)).toMatchObject({ type: "dir", mode: 0o700 });
    expect(stat(`${f}.before`)).toMatchObject({ type: "file", mode: 0o600, size: 7 });
    expect(stat(f)?.fastTarget).toBe(`../${ALLOWED_NAME}`);
    expect(Bun.spawnSync(["e2fsck", "-fn", img]).exitCode).toBe(0);
  });
});

describe("parseStat and lookups against real images", () => {
  test("link targets are read byte for byte, fast and slow, whatever they hold", async () => {
    const src = join(tmp, "links");
    mkdirSync(src);
    const fast = 'T\n"z\\ "q"';
    const slow = `/${"x".repeat(100)}\ndump -p /a /b\n`;
    symlinkSync(fast, join(src, "fast"));
    symlinkSync(slow, join(src, "slow"));
    writeFileSync(join(src, "f"), "data", { mode: 0o640 });
    const img = mkimage("links.ext4", src);
    const fmt = ext4Format(img);
    expect(await fmt.lookup("/fast")).toEqual({ type: "symlink", target: fast });
    expect(await fmt.lookup("/slow")).toEqual({ type: "symlink", target: slow });
    const f = await fmt.lookup("/f");
    expect(f).toMatchObject({ type: "file", mode: 0o640 });
    expect(f?.type === "file" && new TextDecoder().decode(await f.data())).toBe("data");
    expect(await fmt.lookup("/missing")).toBeNull();
    // A path through a link debugfs cannot be given: nothing there, and no debugfs call with it.
    expect(await fmt.lookup("/fast/x")).toBeNull();
    expect(await fmt.lookup("/a b")).toBeNull();
  });

  test("parseStat of a directory, a file and nothing", () => {
    const dirOut =
      "Inode: 2   Type: directory    Mode:  0755   Flags: 0x80000\nGeneration: 0    Version: 0x00000000:00000000\nUser:     0   Group:     0   Project:     0   Size: 1024\n";
    expect(parseStat(dirOut)).toMatchObject({ type: "dir", mode: 0o755, uid: 0, gid: 0 });
    const fileOut =
      "Inode: 12   Type: regular    Mode:  0600   Flags: 0x80000\nUser:  1000   Group:  1001   Project:     0   Size: 5\n";
    expect(parseStat(fileOut)).toMatchObject({
      type: "file",
      mode: 0o600,
      uid: 1000,
      gid: 1001,
      size: 5,
    });
    expect(parseStat("")).toBeNull();
  });
});
