import { describe, expect, test } from "bun:test";
import { gzipSync } from "node:zlib";
import { type HeroError, isHeroError } from "./errors.ts";
import {
  compressionOf,
  DEFAULT_MAX_UNPACKED,
  formatSize,
  inflate,
  MAX_UNPACKED_ENV,
  maxUnpacked,
  parseSize,
} from "./inflate.ts";
import { extractMember, writeTar } from "./tar.ts";

const enc = new TextEncoder();
const thrown = (f: () => unknown): HeroError => {
  try {
    f();
  } catch (e) {
    if (isHeroError(e, "input")) return e;
    throw e;
  }
  throw new Error("accepted");
};

describe("sizes (pure)", () => {
  test("parseSize reads bytes and K/M/G/T (powers of 1024), with or without B/iB", () => {
    expect(parseSize("1048576")).toBe(1048576);
    expect(parseSize("512M")).toBe(512 * 1024 ** 2);
    expect(parseSize("2G")).toBe(2 * 1024 ** 3);
    expect(parseSize("64KiB")).toBe(65536);
    expect(parseSize(" 1.5g ")).toBe(1.5 * 1024 ** 3);
    for (const bad of ["", "0", "-1", "lots", "1X", "1e9", "G"]) expect(parseSize(bad)).toBeNull();
  });
  test("formatSize", () => {
    expect(formatSize(512 * 1024 ** 2)).toBe("512 MiB");
    expect(formatSize(1.5 * 1024 ** 3)).toBe("1.5 GiB");
    expect(formatSize(300)).toBe("300 bytes");
  });
  test("the limit comes from HERO_MAX_UNPACKED, else 512 MiB; a bad value names the variable", () => {
    expect(maxUnpacked({})).toBe(DEFAULT_MAX_UNPACKED);
    expect(DEFAULT_MAX_UNPACKED).toBe(512 * 1024 ** 2);
    expect(maxUnpacked({ [MAX_UNPACKED_ENV]: "2G" })).toBe(2 * 1024 ** 3);
    expect(String(thrown(() => maxUnpacked({ [MAX_UNPACKED_ENV]: "lots" })))).toMatch(
      /^HERO_MAX_UNPACKED: "lots" is not a size/,
    );
  });
  test("compression from the magic bytes", () => {
    expect(compressionOf(gzipSync(enc.encode("x")))).toBe("gzip");
    expect(compressionOf(Bun.zstdCompressSync(enc.encode("x")))).toBe("zstd");
    expect(compressionOf(enc.encode("070701"))).toBeNull();
    expect(compressionOf(new Uint8Array(0))).toBeNull();
  });
});

describe("inflate", () => {
  const data = enc.encode("hello ".repeat(1000));
  test("gzip and zstd (concatenated members and frames too) within the limit", () => {
    const two = (c: (b: Uint8Array) => Uint8Array) => new Uint8Array([...c(data), ...c(data)]);
    for (const [kind, c] of [
      ["gzip", (b: Uint8Array) => new Uint8Array(gzipSync(b))],
      ["zstd", (b: Uint8Array) => Bun.zstdCompressSync(b)],
    ] as const) {
      expect(inflate(c(data), kind, { max: data.length, what: "x" })).toEqual(data);
      expect(inflate(two(c), kind, { max: 2 * data.length, what: "x" }).length).toBe(
        2 * data.length,
      );
    }
  });

  test("one byte past the limit is refused, naming what, the file and the limit", () => {
    for (const [kind, z] of [
      ["gzip", gzipSync(data)],
      ["zstd", Bun.zstdCompressSync(data)],
    ] as const) {
      const e = thrown(() =>
        inflate(new Uint8Array(z), kind, { max: data.length - 1, what: "a base", file: "/i.img" }),
      );
      expect(e.code).toBe("too-large");
      expect(String(e)).toMatch(
        /^\/i\.img: a base unpacks to more than 5\.9 KiB, the limit for unpacking: refused .*HERO_MAX_UNPACKED=SIZE/,
      );
    }
    // A share of a limit says so; a limit of 0 refuses any output.
    expect(
      String(thrown(() => inflate(gzipSync(data), "gzip", { max: 10, limit: 2048, what: "l" }))),
    ).toMatch(/more than 10 bytes, what is left of the 2 KiB limit/);
    expect(thrown(() => inflate(gzipSync(data), "gzip", { max: 0, what: "l" })).code).toBe(
      "too-large",
    );
  });

  test("64 MiB of zeros against a 1 MiB limit stops early (memory stays near the limit)", () => {
    const bomb = new Uint8Array(gzipSync(new Uint8Array(64 * 1024 ** 2)));
    expect(bomb.length).toBeLessThan(100_000);
    expect(thrown(() => inflate(bomb, "gzip", { max: 1024 ** 2, what: "bomb" })).code).toBe(
      "too-large",
    );
  });

  test("corrupt data is an input error too", () => {
    expect(
      thrown(() => inflate(new Uint8Array([0x1f, 0x8b, 1, 2, 3]), "gzip", { max: 9, what: "x" }))
        .code,
    ).toBe("corrupt");
    expect(
      thrown(() =>
        inflate(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3]), "zstd", { max: 9, what: "x" }),
      ).code,
    ).toBe("corrupt");
  });
});

describe("release archives (lib/tar.ts extractMember)", () => {
  const tgz = (size: number) =>
    new Uint8Array(
      gzipSync(writeTar([{ path: "tool", type: "file", mode: 0o755, data: new Uint8Array(size) }])),
    );
  test("a member within the limit is extracted", () => {
    expect(extractMember(tgz(1000), "tool", "tool 1", 64 * 1024).length).toBe(1000);
  });
  test("an archive that unpacks past the limit is refused, naming the binary", () => {
    const e = thrown(() => extractMember(tgz(8 * 1024 ** 2), "tool", "tool 1.0", 1024 ** 2));
    expect(e.code).toBe("too-large");
    expect(e.message).toMatch(/^tool 1\.0: the release archive unpacks to more than 1 MiB/);
  });
});
