import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { elfInterpreter } from "./elf.ts";

const head = (path: string) => new Uint8Array(readFileSync(path)).subarray(0, 64 * 1024);

describe("elfInterpreter", () => {
  test("reads PT_INTERP of a dynamic ELF; none for a static one, a script or a truncated header", () => {
    // The host's own binaries: ls is dynamic, Debian's busybox is static.
    expect(elfInterpreter(head("/bin/ls"))).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(elfInterpreter(head("/bin/busybox"))).toBeNull();
    expect(
      elfInterpreter(new TextEncoder().encode("#!/bin/sh\nexec true\n".padEnd(80))),
    ).toBeNull();
    expect(elfInterpreter(head("/bin/ls").subarray(0, 100))).toBeNull();
    expect(elfInterpreter(new Uint8Array(0))).toBeNull();
  });
});
