import { describe, expect, test } from "bun:test";
import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type HeroError, isHeroError, shortCode } from "../../lib/errors.ts";
import {
  type CpioEntry,
  newcChunks,
  readConcatenated,
  readNewc,
  typeOf,
  writeNewc,
} from "./newc.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The spec's header, built by hand: magic + 13 fields of 8 upper-case hex digits. */
function specHeader(f: number[], name: string): string {
  return `070701${f.map((n) => n.toString(16).toUpperCase().padStart(8, "0")).join("")}${name}\0`;
}

describe("newc writer: bytes", () => {
  test("a small file: header, name, padding, data, padding, trailer, 512 padding", () => {
    const out = writeNewc([
      {
        type: "file",
        path: "/etc/hi",
        mode: 0o644,
        data: enc.encode("hello"),
        uid: 1,
        gid: 2,
        mtime: 1700000000,
      },
    ]);
    // ino 1, mode 0100644, uid 1, gid 2, nlink 1, mtime, size 5, dev 0:0, rdev 0:0, namesize 7 ("etc/hi\0"), check 0
    const h = specHeader([1, 0o100644, 1, 2, 1, 1700000000, 5, 0, 0, 0, 0, 7, 0], "etc/hi");
    expect(h.length).toBe(117); // 110 + 7 → padded to 120
    const expected = `${h}\0\0\0hello\0\0\0`;
    expect(dec.decode(out.subarray(0, expected.length))).toBe(expected);
    const trailer = specHeader([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0], "TRAILER!!!");
    expect(dec.decode(out.subarray(expected.length, expected.length + trailer.length))).toBe(
      trailer,
    );
    expect(out.length % 512).toBe(0);
    expect(out.subarray(expected.length + trailer.length).every((b) => b === 0)).toBe(true);
  });

  test("padding for every name and data length mod 4", () => {
    for (let nameLen = 1; nameLen <= 4; nameLen++) {
      for (let dataLen = 0; dataLen <= 4; dataLen++) {
        const path = "n".repeat(nameLen);
        const out = writeNewc([
          { type: "file", path, mode: 0o600, data: new Uint8Array(dataLen).fill(7) },
        ]);
        const headAndName = 110 + nameLen + 1;
        const dataAt = headAndName + ((4 - (headAndName % 4)) % 4);
        expect(dataAt % 4).toBe(0);
        expect(out.subarray(dataAt, dataAt + dataLen).every((b) => b === 7)).toBe(true);
        const next = dataAt + dataLen + ((4 - (dataLen % 4)) % 4);
        expect(dec.decode(out.subarray(next, next + 6))).toBe("070701");
      }
    }
  });

  test("deterministic: same input, same bytes; inode numbers count from inoStart", () => {
    const entries: CpioEntry[] = [
      { type: "dir", path: "a", mode: 0o755 },
      { type: "file", path: "a/b", mode: 0o755, data: enc.encode("x") },
    ];
    expect(writeNewc(entries)).toEqual(writeNewc(entries));
    const r = readNewc(writeNewc(entries, { inoStart: 100 })).records;
    expect(r.map((x) => x.ino)).toEqual([100, 101]);
  });

  test("big file data is yielded without copying", () => {
    const big = new Uint8Array(1 << 20);
    const chunks = [...newcChunks([{ type: "file", path: "big", mode: 0o644, data: big }])];
    expect(chunks.some((c) => c === big)).toBe(true);
  });
});

describe("newc round trip (our reader)", () => {
  test("every entry type keeps type bits, rdev, owner, mtime and data", () => {
    const entries: CpioEntry[] = [
      { type: "dir", path: "dev", mode: 0o755, mtime: 5 },
      { type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
      { type: "block", path: "dev/vda", mode: 0o660, major: 254, minor: 0, gid: 6 },
      { type: "fifo", path: "dev/initctl", mode: 0o600 },
      { type: "symlink", path: "init", target: "sbin/init" },
      {
        type: "file",
        path: "sbin/init",
        mode: 0o4755,
        data: enc.encode("#!/bin/sh\n"),
        uid: 0,
        gid: 0,
        mtime: 42,
      },
    ];
    const r = readNewc(writeNewc(entries)).records;
    expect(r.map((x) => [x.path, typeOf(x.mode)])).toEqual([
      ["dev", "dir"],
      ["dev/console", "char"],
      ["dev/vda", "block"],
      ["dev/initctl", "fifo"],
      ["init", "symlink"],
      ["sbin/init", "file"],
    ]);
    expect(r[1]).toMatchObject({ rdevmajor: 5, rdevminor: 1, mode: 0o020600 });
    expect(r[2]).toMatchObject({ rdevmajor: 254, gid: 6 });
    expect(dec.decode(r[4]?.data)).toBe("sbin/init");
    expect(r[5]).toMatchObject({ mode: 0o104755, mtime: 42 });
    expect(r[0]).toMatchObject({ nlink: 2, mtime: 5 });
  });
});

describe("GNU cpio interop", () => {
  test("GNU cpio lists and extracts what we write", () => {
    const dir = mkdtempSync(join(tmpdir(), "cpio-gnu-"));
    try {
      const archive = join(dir, "a.cpio");
      writeFileSync(
        archive,
        writeNewc([
          { type: "dir", path: "etc", mode: 0o755 },
          {
            type: "file",
            path: "etc/motd",
            mode: 0o640,
            data: enc.encode("hi\n"),
            mtime: 1000000000,
          },
          { type: "symlink", path: "etc/link", target: "motd" },
          { type: "file", path: "bin/x", mode: 0o755, data: new Uint8Array(70001).fill(65) },
        ]),
      );
      const list = Bun.spawnSync(["sh", "-c", `cpio -it < ${archive}`], { stderr: "pipe" });
      expect(list.stdout.toString().split("\n").filter(Boolean)).toEqual([
        "etc",
        "etc/motd",
        "etc/link",
        "bin/x",
      ]);
      const out = join(dir, "out");
      mkdirSync(out);
      const x = Bun.spawnSync(["sh", "-c", `cpio -idm --no-absolute-filenames < ${archive}`], {
        cwd: out,
        stderr: "pipe",
      });
      expect(x.exitCode).toBe(0);
      expect(readFileSync(join(out, "etc/motd"), "utf8")).toBe("hi\n");
      expect(lstatSync(join(out, "etc/motd")).mode & 0o7777).toBe(0o640);
      expect(lstatSync(join(out, "etc/motd")).mtimeMs).toBe(1000000000 * 1000);
      expect(readlinkSync(join(out, "etc/link"))).toBe("motd");
      expect(readFileSync(join(out, "bin/x")).length).toBe(70001);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("we read what GNU cpio -o -H newc writes", () => {
    const dir = mkdtempSync(join(tmpdir(), "cpio-gnu-"));
    try {
      const src = join(dir, "src");
      mkdirSync(join(src, "d"), { recursive: true });
      writeFileSync(join(src, "d/f"), "content");
      chmodSync(join(src, "d/f"), 0o751);
      symlinkSync("d/f", join(src, "l"));
      const p = Bun.spawnSync(["sh", "-c", "printf 'd\\nd/f\\nl\\n' | cpio -o -H newc --quiet"], {
        cwd: src,
      });
      const r = readNewc(new Uint8Array(p.stdout)).records;
      expect(r.map((x) => [x.path, typeOf(x.mode)])).toEqual([
        ["d", "dir"],
        ["d/f", "file"],
        ["l", "symlink"],
      ]);
      expect(dec.decode(r[1]?.data)).toBe("content");
      expect((r[1]?.mode ?? 0) & 0o7777).toBe(0o751);
      expect(dec.decode(r[2]?.data)).toBe("d/f");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("errors name the offset or the path", () => {
  const good = writeNewc([{ type: "file", path: "f", mode: 0o644, data: enc.encode("data") }]);
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (e) {
      expect(isHeroError(e, "cpio")).toBe(true);
      return `${shortCode((e as HeroError).code)}: ${(e as Error).message}`;
    }
    return "no error";
  };
  test("bad magic", () => {
    const bad = good.slice();
    bad[0] = 0x31;
    expect(code(() => readNewc(bad))).toBe('magic: bad magic at offset 0: "170701"');
  });
  test("truncated header, name and data; missing trailer", () => {
    expect(code(() => readNewc(good.subarray(0, 50)))).toBe(
      "truncated: truncated header at offset 0",
    );
    expect(code(() => readNewc(good.subarray(0, 113)))).toMatch(
      /^truncated: truncated (name|data)/,
    );
    expect(code(() => readNewc(good.subarray(0, 114)))).toMatch(
      /^truncated: truncated data of "f" at offset 112/,
    );
    expect(code(() => readNewc(good.subarray(0, 120)))).toBe(
      "truncated: truncated header at offset 116",
    );
  });
  test("non-hex field", () => {
    const bad = good.slice();
    bad.set(enc.encode("ZZ"), 6 + 8 * 6);
    expect(code(() => readNewc(bad))).toBe(
      'hex: bad hex in field filesize at offset 54: "ZZ000004"',
    );
  });
  test("writer refuses duplicates, '..', empty paths; strips a leading slash", () => {
    expect(
      code(() =>
        writeNewc([
          { type: "dir", path: "a", mode: 0o755 },
          { type: "dir", path: "/a", mode: 0o755 },
        ]),
      ),
    ).toBe('duplicate: duplicate path "a"');
    expect(code(() => writeNewc([{ type: "dir", path: "a/../../etc", mode: 0o755 }]))).toMatch(
      /^path: path escapes/,
    );
    expect(code(() => writeNewc([{ type: "dir", path: "/", mode: 0o755 }]))).toMatch(
      /^path: empty path/,
    );
    expect(readNewc(writeNewc([{ type: "dir", path: "/x/y", mode: 0o755 }])).records[0]?.path).toBe(
      "x/y",
    );
  });
});

describe("appended segments", () => {
  test("readConcatenated returns each segment; later entries can shadow earlier ones", () => {
    const a = writeNewc([{ type: "file", path: "etc/v", mode: 0o644, data: enc.encode("1") }]);
    const b = writeNewc([{ type: "file", path: "etc/v", mode: 0o644, data: enc.encode("2") }]);
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    const segs = readConcatenated(both);
    expect(segs).toHaveLength(2);
    expect(dec.decode(segs[1]?.[0]?.data)).toBe("2");
  });
});
