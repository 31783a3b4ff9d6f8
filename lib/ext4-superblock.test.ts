import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBlank, PROBE_BYTES, parseExt4Superblock } from "./ext4-superblock.ts";

/** A real superblock, made by mke2fs (the unit under test is pure; the fixture is real). */
function mkfsHead(args: string[]): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), "sb-"));
  try {
    const img = join(dir, "fs.img");
    const p = Bun.spawnSync(["mke2fs", "-q", "-F", "-t", "ext4", ...args, img, "4M"]);
    if (p.exitCode !== 0) throw new Error(`mke2fs: ${p.stderr.toString()}`);
    return new Uint8Array(readFileSync(img)).slice(0, PROBE_BYTES);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("parseExt4Superblock", () => {
  test("reads the label, UUID and size mke2fs wrote", () => {
    const sb = parseExt4Superblock(
      mkfsHead(["-L", "HEROCFG", "-U", "0b2d6a3c-1e5f-4a7b-8c9d-0e1f2a3b4c5d"]),
    );
    expect(sb).toEqual({
      label: "HEROCFG",
      uuid: "0b2d6a3c-1e5f-4a7b-8c9d-0e1f2a3b4c5d",
      sizeBytes: 4 * 1024 * 1024,
    });
  });

  test("a 16-byte label (no terminating NUL) and no label", () => {
    expect(parseExt4Superblock(mkfsHead(["-L", "ABCDEFGHIJKLMNOP"]))?.label).toBe(
      "ABCDEFGHIJKLMNOP",
    );
    expect(parseExt4Superblock(mkfsHead([]))?.label).toBe("");
  });

  test("not ext: zeros, short input, a wrong magic, an absurd block size", () => {
    expect(parseExt4Superblock(new Uint8Array(PROBE_BYTES))).toBeNull();
    expect(parseExt4Superblock(new Uint8Array(100))).toBeNull();
    const head = mkfsHead(["-L", "X"]);
    const bad = head.slice();
    bad[1024 + 0x38] = 0;
    expect(parseExt4Superblock(bad)).toBeNull();
    const big = head.slice();
    big[1024 + 0x18] = 40;
    expect(parseExt4Superblock(big)).toBeNull();
  });
});

test("isBlank", () => {
  expect(isBlank(new Uint8Array(4096))).toBe(true);
  const b = new Uint8Array(4096);
  b[4095] = 1;
  expect(isBlank(b)).toBe(false);
});
