import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { bootInitramfsEntries } from "./boot-initramfs.ts";
import { ensureKernel } from "./kernel.ts";

test("the tiny boot initramfs: the pre-init at /init, the disk modules and their load order", async () => {
  const kernel = await ensureKernel();
  const preinit = new Uint8Array([0x7f, 0x45, 0x4c, 0x46]);
  const e = await bootInitramfsEntries(kernel, preinit);
  const byPath = new Map(e.map((x) => [x.path, x]));
  expect(byPath.get("init")).toMatchObject({ type: "file", mode: 0o755, data: preinit });
  for (const d of ["dev", "proc", "newroot"]) expect(byPath.get(d)?.type).toBe("dir");
  const list = byPath.get("hero-root-modules");
  if (list?.type !== "file") throw new Error("no /hero-root-modules");
  const paths = new TextDecoder().decode(list.data).trim().split("\n");
  // Every listed module is in the image, as the same bytes as the kernel's.
  const mods = `/lib/modules/${kernel.version}/`;
  for (const p of paths) {
    expect(p.startsWith(mods)).toBe(true);
    const f = byPath.get(p.slice(1));
    if (f?.type !== "file") throw new Error(`${p} is listed but not in the image`);
    expect(f.data).toEqual(
      new Uint8Array(readFileSync(join(kernel.modulesDir, p.slice(mods.length)))),
    );
  }
  // Dependencies first (modules.dep): the disk driver after virtio, ext4 after jbd2 and mbcache.
  const at = (name: string) => paths.findIndex((p) => p.endsWith(`/${name}.ko`));
  for (const n of ["virtio_pci", "virtio_blk", "crc32c_generic", "ext4", "jbd2", "mbcache"])
    expect(at(n)).toBeGreaterThanOrEqual(0);
  expect(at("virtio_ring")).toBeLessThan(at("virtio_blk"));
  expect(at("jbd2")).toBeLessThan(at("ext4"));
  expect(at("mbcache")).toBeLessThan(at("ext4"));
  // No overlay module and no hero-init: the pre-init mounts the disk itself.
  expect(paths.some((p) => p.includes("overlay"))).toBe(false);
  expect(e.some((x) => x.path.includes("hero-init"))).toBe(false);
}, 120_000);
