import { expect, test } from "bun:test";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { MS } from "../../sys/ffi.ts";
import { describeSource, mkfsArgv, volumeFlags } from "./volumes.ts";

const vols = (toml: string) => parseVmConfig(toml, "vm.toml").config.volumes;

test("safe mount flags by default: nosuid, nodev, noexec; ro and exec when asked", () => {
  const [rw, ro, ex] = vols(
    '[[volumes]]\nserial = "a"\npath = "/a"\n[[volumes]]\nserial = "b"\npath = "/b"\nreadonly = true\n[[volumes]]\nserial = "c"\npath = "/c"\nexec = true\n',
  );
  const flags = (v: typeof rw) => volumeFlags(v as NonNullable<typeof rw>);
  expect(flags(rw)).toBe(MS.NOSUID | MS.NODEV | MS.NOEXEC);
  expect(flags(ro)).toBe(MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.RDONLY);
  expect(flags(ex)).toBe(MS.NOSUID | MS.NODEV);
});

test("describeSource names how the device is found", () => {
  const vs = vols(
    '[[volumes]]\nserial = "a"\npath = "/a"\n[[volumes]]\nlabel = "L"\npath = "/b"\n[[volumes]]\ndevice = "/dev/vdc"\npath = "/c"\n',
  );
  expect(vs.map(describeSource)).toEqual(['serial "a"', 'label "L"', "device /dev/vdc"]);
});

test("mkfs: e2fsprogs' mkfs.ext4 with -t, busybox's mke2fs without, a clear error with none", () => {
  const d = mkdtempSync(join(tmpdir(), "mkfs-"));
  try {
    const [v] = vols('[[volumes]]\nserial = "a"\npath = "/a"\nmkfs = true\n');
    const vol = { ...(v as NonNullable<typeof v>), label: "DATA" };
    expect(() => mkfsArgv(vol, "/dev/vdb", [d])).toThrow(
      "/dev/vdb is blank and mkfs = true, but the rootfs has no mkfs.ext4 or mke2fs (install e2fsprogs)",
    );
    writeFileSync(join(d, "busybox"), "");
    symlinkSync("busybox", join(d, "mke2fs"));
    expect(mkfsArgv(vol, "/dev/vdb", [d])).toEqual([
      join(d, "mke2fs"),
      "-F",
      "-L",
      "DATA",
      "/dev/vdb",
    ]);
    writeFileSync(join(d, "mkfs.ext4"), "");
    expect(mkfsArgv(vol, "/dev/vdb", [d])).toEqual([
      join(d, "mkfs.ext4"),
      "-q",
      "-F",
      "-t",
      "ext4",
      "-L",
      "DATA",
      "/dev/vdb",
    ]);
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
