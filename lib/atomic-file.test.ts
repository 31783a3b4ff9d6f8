import { afterAll, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import {
  atomicWrite,
  fsyncPath,
  renameDurable,
  replaceFile,
  replaceFileAsync,
  switchLink,
  tempPathFor,
} from "./atomic-file.ts";

const top = mkdtempSync(join(tmpdir(), "hero-atomic-"));
let dir = "";
let n = 0;
beforeEach(() => {
  dir = join(top, String(n++));
  mkdirSync(dir);
});
afterAll(() => rmSync(top, { recursive: true, force: true }));

/** Every name in `dir` (temporary files included). */
const names = () => readdirSync(dir).sort();

describe("atomicWrite", () => {
  test("creates a file with the content and the mode (cut by the umask), no temp left", () => {
    const f = join(dir, "state.json");
    atomicWrite(f, '{"a":1}', 0o600);
    expect(readFileSync(f, "utf8")).toBe('{"a":1}');
    expect(statSync(f).mode & 0o777).toBe(0o600 & ~process.umask());
    expect(names()).toEqual(["state.json"]);
  });

  test("replaces an existing file (a new inode: an open reader keeps the old bytes)", () => {
    const f = join(dir, "f");
    writeFileSync(f, "old");
    const before = statSync(f).ino;
    atomicWrite(f, new Uint8Array([110, 101, 119]));
    expect(readFileSync(f, "utf8")).toBe("new");
    expect(statSync(f).ino).not.toBe(before);
    expect(names()).toEqual(["f"]);
  });

  test("a write that fails mid-way (file size limit: EFBIG) leaves the old file intact and no temp", () => {
    const f = join(dir, "f");
    writeFileSync(f, "old");
    // A child with a 4-block file size limit (SIGXFSZ ignored, so write() returns EFBIG).
    const script = `import { atomicWrite } from ${JSON.stringify(join(import.meta.dir, "atomic-file.ts"))};
atomicWrite(${JSON.stringify(f)}, new Uint8Array(256 * 1024));`;
    const p = Bun.spawnSync(
      ["sh", "-c", `trap '' XFSZ; ulimit -f 4; exec "$0" -e "$1"`, process.execPath, script],
      { stderr: "pipe" },
    );
    expect(p.exitCode).not.toBe(0);
    expect(p.stderr.toString()).toContain("EFBIG");
    expect(readFileSync(f, "utf8")).toBe("old");
    expect(names()).toEqual(["f"]);
  });

  test("a rename that fails (a directory is in the way) leaves it intact and no temp", () => {
    const d = join(dir, "taken");
    mkdirSync(d);
    writeFileSync(join(d, "inside"), "x");
    expect(() => atomicWrite(d, "data")).toThrow();
    expect(lstatSync(d).isDirectory()).toBe(true);
    expect(readFileSync(join(d, "inside"), "utf8")).toBe("x");
    expect(names()).toEqual(["taken"]);
  });

  test("a missing directory is an error, and nothing is created", () => {
    expect(() => atomicWrite(join(dir, "no/such/f"), "x")).toThrow(/ENOENT/);
    expect(names()).toEqual([]);
  });

  test("with an owner: the exact mode (no umask, set-id bits kept) and that owner", () => {
    const f = join(dir, "tool");
    const me = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
    atomicWrite(f, "x", 0o4775, { owner: me });
    const st = statSync(f);
    expect(st.mode & 0o7777).toBe(0o4775);
    expect([st.uid, st.gid]).toEqual([me.uid, me.gid]);
  });

  test("a check that throws sees the complete temporary file and leaves the old file and no temp", () => {
    const f = join(dir, "sudoers");
    writeFileSync(f, "old");
    let seen = "";
    const check = (tmp: string) => {
      seen = readFileSync(tmp, "utf8");
      throw new Error("refused");
    };
    expect(() => atomicWrite(f, "new", 0o440, { check })).toThrow("refused");
    expect(seen).toBe("new");
    expect(readFileSync(f, "utf8")).toBe("old");
    expect(names()).toEqual(["sudoers"]);
  });
});

describe("replaceFile", () => {
  test("fill writes beside the target while readers still see the old file", () => {
    const f = join(dir, "image");
    writeFileSync(f, "old");
    let seen = "";
    replaceFile(f, (tmp) => {
      expect(dirname(tmp)).toBe(dir);
      writeFileSync(tmp, "new");
      seen = readFileSync(f, "utf8");
    });
    expect(seen).toBe("old");
    expect(readFileSync(f, "utf8")).toBe("new");
    expect(names()).toEqual(["image"]);
  });

  test("a fill that fails half-way: the old file is intact, the half-written temp removed", () => {
    const f = join(dir, "image");
    writeFileSync(f, "old");
    expect(() =>
      replaceFile(f, (tmp) => {
        writeFileSync(tmp, "half");
        throw new Error("disk full");
      }),
    ).toThrow("disk full");
    expect(readFileSync(f, "utf8")).toBe("old");
    expect(names()).toEqual(["image"]);
  });

  test("async: same contract", async () => {
    const f = join(dir, "copy");
    writeFileSync(f, "old");
    await replaceFileAsync(f, async (tmp) => {
      await Bun.write(tmp, "new");
    });
    expect(readFileSync(f, "utf8")).toBe("new");
    await expect(
      replaceFileAsync(f, async (tmp) => {
        await Bun.write(tmp, "half");
        throw new Error("connection lost");
      }),
    ).rejects.toThrow("connection lost");
    expect(readFileSync(f, "utf8")).toBe("new");
    expect(names()).toEqual(["copy"]);
  });
});

describe("renameDurable", () => {
  test("moves a complete file over the target", () => {
    writeFileSync(join(dir, "a.part"), "complete");
    writeFileSync(join(dir, "a"), "old");
    renameDurable(join(dir, "a.part"), join(dir, "a"));
    expect(readFileSync(join(dir, "a"), "utf8")).toBe("complete");
    expect(names()).toEqual(["a"]);
  });

  test("a failed rename keeps the source (a download's .part stays for a resume)", () => {
    writeFileSync(join(dir, "a.part"), "partial");
    expect(() => renameDurable(join(dir, "a.part"), join(dir, "gone/a"))).toThrow(/ENOENT/);
    expect(readFileSync(join(dir, "a.part"), "utf8")).toBe("partial");
  });
});

describe("switchLink", () => {
  test("creates, then switches a link with one rename; no temp left", () => {
    const link = join(dir, "current");
    switchLink(link, "1.0.0");
    expect(readlinkSync(link)).toBe("1.0.0");
    switchLink(link, "2.0.0");
    expect(readlinkSync(link)).toBe("2.0.0");
    expect(names()).toEqual(["current"]);
  });

  test("replaces a regular file too (an install path that was a copy)", () => {
    const p = join(dir, "bin");
    writeFileSync(p, "copy");
    switchLink(p, "/pkgs/x/current/x");
    expect(readlinkSync(p)).toBe("/pkgs/x/current/x");
  });

  test("a switch that fails (a non-empty directory is in the way) leaves it intact and no temp", () => {
    const p = join(dir, "current");
    mkdirSync(p);
    writeFileSync(join(p, "x"), "x");
    expect(() => switchLink(p, "2.0.0")).toThrow();
    expect(lstatSync(p).isDirectory()).toBe(true);
    expect(names()).toEqual(["current"]);
  });

  test("a switch that fails (a target over PATH_MAX) keeps the old link and leaves no temp", () => {
    const link = join(dir, "current");
    symlinkSync("1.0.0", link);
    expect(() => switchLink(link, "v".repeat(5000))).toThrow(/ENAMETOOLONG/);
    expect(readlinkSync(link)).toBe("1.0.0");
    expect(names()).toEqual(["current"]);
  });
});

describe("helpers", () => {
  test("temporary names are beside the target, marked .tmp-, and never repeat", () => {
    const a = tempPathFor("/x/y/file");
    const b = tempPathFor("/x/y/file");
    expect(dirname(a)).toBe("/x/y");
    expect(a).toMatch(/^\/x\/y\/file\.tmp-\d+-[0-9a-f]{12}$/);
    expect(a).not.toBe(b);
  });

  test("fsyncPath takes files and directories; a missing path is an error", () => {
    writeFileSync(join(dir, "f"), "x");
    fsyncPath(join(dir, "f"));
    fsyncPath(dir);
    expect(() => fsyncPath(join(dir, "nope"))).toThrow(/ENOENT/);
    expect(existsSync(join(dir, "nope"))).toBe(false);
  });
});

describe("replaceFile options", () => {
  test("the final mode is set after the fill (and after the fsync)", () => {
    const f = join(dir, "copy");
    replaceFile(f, (tmp) => writeFileSync(tmp, "x"), { mode: 0o400 });
    expect(statSync(f).mode & 0o777).toBe(0o400);
    expect(readFileSync(f, "utf8")).toBe("x");
  });
});
