import { describe, expect, test } from "bun:test";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { readInterpreter, usePrivateLoader } from "./private-loader.ts";

const ROOT = join(import.meta.dir, "../..");
// The Bun runtime from npm: the same ELF that `bun build --compile` wraps.
const BUN = new Uint8Array(readFileSync(join(ROOT, "node_modules/bun/bin/bun.exe")));

function readelf(bytes: Uint8Array, flag: string): string {
  const path = join(tmpdir(), `elf-${process.pid}-${flag}`);
  writeFileSync(path, bytes);
  return Bun.spawnSync(["readelf", flag, "-W", path]).stdout.toString();
}

describe("private loader patch", () => {
  const patched = usePrivateLoader(BUN);

  test("the interpreter becomes the private loader", () => {
    expect(readInterpreter(BUN)).toBe("/lib64/ld-linux-x86-64.so.2");
    expect(readInterpreter(patched)).toBe(LAYOUT.privateLoader);
    expect(readelf(patched, "-l")).toContain(
      `[Requesting program interpreter: ${LAYOUT.privateLoader}]`,
    );
  });

  test('DT_RUNPATH replaces DT_DEBUG and points (modulo 2^64, as ld.so adds it) at "$ORIGIN"', () => {
    const dyn = readelf(patched, "-d");
    expect(dyn).not.toContain("(DEBUG)");
    expect(readelf(BUN, "-d")).toContain("(DEBUG)");
    const runpath = BigInt(/\(RUNPATH\)\s+(0x[0-9a-f]+)/.exec(dyn)?.[1] ?? "0");
    const strtab = BigInt(/\(STRTAB\)\s+(0x[0-9a-f]+)/.exec(dyn)?.[1] ?? "0");
    const vaddr = BigInt.asUintN(64, strtab + runpath);
    // The first LOAD segment maps file offset 0 at 0x200000 in Bun's binary.
    const off = Number(vaddr - 0x200000n);
    expect(new TextDecoder().decode(patched.subarray(off, off + 8))).toBe("$ORIGIN\0");
  });

  test.skipIf(process.getuid?.() !== 0)(
    "the patched binary runs in a chroot that has no /lib at all",
    () => {
      const root = mkdtempSync(join(tmpdir(), "noglibc-"));
      try {
        const priv = join(root, "usr/lib/hero");
        mkdirSync(priv, { recursive: true });
        writeFileSync(join(priv, "bun"), patched, { mode: 0o755 });
        for (const l of ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2"]) {
          copyFileSync(realpathSync(`/lib/x86_64-linux-gnu/${l}`), join(priv, l));
        }
        copyFileSync(realpathSync("/lib64/ld-linux-x86-64.so.2"), join(priv, "ld.so"));
        mkdirSync(join(root, "proc"));
        expect(existsSync(join(root, "lib"))).toBe(false);
        const p = Bun.spawnSync([
          "unshare",
          "--mount",
          "--",
          "sh",
          "-c",
          `mount -t proc proc ${root}/proc && chroot ${root} /usr/lib/hero/bun --version`,
        ]);
        expect(p.stderr.toString()).toBe("");
        expect(p.stdout.toString().trim()).toMatch(/^\d+\.\d+\.\d+/);
      } finally {
        rmSync(root, { recursive: true, force: true });
      }
    },
  );

  test("nothing moves: same size, and only .interp and one dynamic entry differ", () => {
    expect(patched.length).toBe(BUN.length);
    const changed: number[] = [];
    for (let i = 0; i < BUN.length; i++) if (BUN[i] !== patched[i]) changed.push(i);
    expect(changed.length).toBeGreaterThan(0);
    expect(changed.length).toBeLessThan(28 + 16);
    expect(changed[0]).toBeGreaterThanOrEqual(0x238); // .interp starts after the ELF and program headers
  });

  test("the input is not modified", () => {
    expect(readInterpreter(BUN)).toBe("/lib64/ld-linux-x86-64.so.2");
  });

  test("a static binary and a non-ELF file are refused with a code", () => {
    const preinit = new Uint8Array(readFileSync(join(ROOT, "dist/preinit")));
    expect(() => usePrivateLoader(preinit)).toThrow(
      expect.objectContaining({ code: expect.stringMatching(/^elf\./) }),
    );
    try {
      usePrivateLoader(new TextEncoder().encode("#!/bin/sh\necho not elf\n"));
    } catch (e) {
      expect((e as HeroError).code).toBe("elf.not-elf64");
    }
  });
});
