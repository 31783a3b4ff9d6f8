import { describe, expect, test } from "bun:test";
import { readOnlyFileRanges } from "./proc-maps.ts";

const MAPS = `00200000-02a4c000 r--p 00000000 fe:01 1234                               /sbin/hero-init
02a4c000-06ec5000 r-xp 0284c000 fe:01 1234                               /sbin/hero-init
06ec5000-06f2e000 rw-p 06cc5000 fe:01 1234                               /sbin/hero-init
06f2e000-07000000 rw-p 00000000 00:00 0
7f0000000000-7f0000001000 r-xp 00000000 fe:01 99                         /usr/lib/libc.so.6
7f0000002000-7f0000003000 r--p 00000000 fe:01 1235                       /sbin/hero-init (deleted)
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
not a maps line
`;

describe("readOnlyFileRanges", () => {
  test("gives the read-only mappings of the named file, with their lengths", () => {
    expect(readOnlyFileRanges(MAPS, "/sbin/hero-init")).toEqual([
      { start: 0x200000n, length: 0x2a4c000n - 0x200000n },
      { start: 0x2a4c000n, length: 0x6ec5000n - 0x2a4c000n },
    ]);
  });

  test("leaves out writable mappings, other files, anonymous memory and a replaced file", () => {
    const starts = readOnlyFileRanges(MAPS, "/sbin/hero-init").map((r) => r.start);
    expect(starts).not.toContain(0x6ec5000n);
    expect(starts).not.toContain(0x7f0000002000n);
    expect(readOnlyFileRanges(MAPS, "/usr/lib/libc.so.6")).toEqual([
      { start: 0x7f0000000000n, length: 0x1000n },
    ]);
    expect(readOnlyFileRanges(MAPS, "/nowhere")).toEqual([]);
    expect(readOnlyFileRanges("", "/sbin/hero-init")).toEqual([]);
  });

  test("a path with spaces is matched whole", () => {
    const line = "1000-2000 r-xp 00000000 fe:01 7      /opt/my tools/hero-init\n";
    expect(readOnlyFileRanges(line, "/opt/my tools/hero-init")).toEqual([
      { start: 0x1000n, length: 0x1000n },
    ]);
    expect(readOnlyFileRanges(line, "/opt/my")).toEqual([]);
  });
});
