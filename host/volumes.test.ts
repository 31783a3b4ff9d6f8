import { expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isBlank, parseExt4Superblock } from "../lib/ext4-superblock.ts";
import { parseVmConfig } from "../lib/vm-config.ts";
import { ensureVolumeImages, volumeImageName } from "./volumes.ts";

const vols = (toml: string) => parseVmConfig(toml, "vm.toml").config.volumes;

test("images: sparse, mke2fs'ed with the label (blank when the guest is to mkfs), kept when present", () => {
  const out = mkdtempSync(join(tmpdir(), "vols-"));
  try {
    const v = vols(
      '[[volumes]]\nserial = "data"\npath = "/data"\nsize_mb = 64\n' +
        '[[volumes]]\nlabel = "LOGS"\npath = "/logs"\nsize_mb = 8\n' +
        '[[volumes]]\nserial = "fresh"\npath = "/fresh"\nmkfs = true\nsize_mb = 8\n' +
        '[[volumes]]\nserial = "byhand"\npath = "/byhand"\n',
    );
    const imgs = ensureVolumeImages(out, v);
    expect(imgs).toEqual([
      { path: join(out, "volumes/data.img"), serial: "data", mount: "/data" },
      { path: join(out, "volumes/label-LOGS.img"), mount: "/logs" },
      { path: join(out, "volumes/fresh.img"), serial: "fresh", mount: "/fresh" },
    ]);
    const data = statSync(join(out, "volumes/data.img"));
    expect(data.size).toBe(64 * 1024 * 1024);
    expect(data.blocks * 512).toBeLessThan(data.size / 4); // sparse
    expect(
      parseExt4Superblock(readFileSync(join(out, "volumes/label-LOGS.img")).subarray(0, 2048))
        ?.label,
    ).toBe("LOGS");
    expect(isBlank(readFileSync(join(out, "volumes/fresh.img")))).toBe(true);
    // a redeploy never overwrites an image that exists
    writeFileSync(join(out, "volumes/data.img"), "precious");
    const again: string[] = [];
    ensureVolumeImages(out, v, (m) => again.push(m));
    expect(readFileSync(join(out, "volumes/data.img"), "utf8")).toBe("precious");
    expect(again).toContain(`volume /data: keeping ${join(out, "volumes/data.img")}`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test("volumeImageName", () => {
  const [a, b, c] = vols(
    '[[volumes]]\nserial = "s1"\npath = "/a"\n[[volumes]]\nlabel = "L"\npath = "/b"\n[[volumes]]\ndevice = "/dev/vdz"\npath = "/c/d"\n',
  );
  expect([a, b, c].map((x) => volumeImageName(x as NonNullable<typeof x>))).toEqual([
    "s1.img",
    "label-L.img",
    "path-c-d.img",
  ]);
});

test("two volumes whose image names meet are refused before any image is made", () => {
  const out = mkdtempSync(join(tmpdir(), "vols-"));
  try {
    const v = vols(
      '[[volumes]]\ndevice = "/dev/vdb"\npath = "/a/b"\nsize_mb = 8\n' +
        '[[volumes]]\ndevice = "/dev/vdc"\npath = "/a-b"\nsize_mb = 8\n',
    );
    expect(() => ensureVolumeImages(out, v)).toThrow(
      "volumes /a/b and /a-b would share the image path-a-b.img: give one of them a serial",
    );
    expect(existsSync(join(out, "volumes"))).toBe(false);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
