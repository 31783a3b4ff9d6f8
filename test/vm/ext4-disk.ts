/**
 * A small ext4 root file system with glibc and busybox, for deployVm to
 * inject hero-init into (its `rootfs` mode): the disk's boot path
 * /usr/lib/hero/hero-init is then the injected binary itself (glibc is
 * there, so no private-loader patch), and a self-updated hero-init (plain
 * bytes from the manifest) can run on it. Sized for two hero-init builds
 * side by side plus the updater's free-space margin. Host-side readers of
 * the image (debugfs) are here too.
 */
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { dirname, join } from "node:path";

const LIBS = ["libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2"];
const APPLETS = ["sh", "sleep", "echo", "cat", "ls", "true", "false", "sync", "mount", "kill"];

function run(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0)
    throw new Error(`${cmd.join(" ")} exited ${p.exitCode}: ${p.stderr.toString().trim()}`);
  return p.stdout.toString();
}

/** Writes a fresh ext4 image of `sizeMB` (sparse) at `path` with the tree `stage`, owned by root, labelled `label`. */
export function ext4FromDir(stage: string, path: string, sizeMB: number, label: string): string {
  rmSync(path, { force: true });
  run([
    "mke2fs",
    "-q",
    "-t",
    "ext4",
    "-d",
    stage,
    "-E",
    "root_owner=0:0",
    "-L",
    label,
    path,
    `${sizeMB}M`,
  ]);
  return path;
}

/** Writes a glibc + busybox ext4 image of `sizeMB` (sparse) at `path` and returns it. */
export function glibcBusyboxExt4(path: string, sizeMB = 640): string {
  const stage = mkdtempSync(join(dirname(path), ".stage-"));
  try {
    for (const d of [
      "bin",
      "sbin",
      "etc",
      "dev",
      "proc",
      "sys",
      "run",
      "tmp",
      "root",
      "usr/bin",
      "lib/x86_64-linux-gnu",
      "lib64",
    ])
      mkdirSync(join(stage, d), { recursive: true });
    copyFileSync("/bin/busybox", join(stage, "bin/busybox"));
    for (const a of APPLETS) symlinkSync("busybox", join(stage, "bin", a));
    for (const l of LIBS)
      copyFileSync(
        realpathSync(`/lib/x86_64-linux-gnu/${l}`),
        join(stage, "lib/x86_64-linux-gnu", l),
      );
    copyFileSync(
      realpathSync("/lib64/ld-linux-x86-64.so.2"),
      join(stage, "lib64/ld-linux-x86-64.so.2"),
    );
    return ext4FromDir(stage, path, sizeMB, "rootfs");
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

/** The bytes of a file in an ext4 image (debugfs dump, read-only). */
export function readFromExt4(image: string, file: string): Uint8Array {
  const tmp = mkdtempSync(join(dirname(image), ".dump-"));
  try {
    const out = join(tmp, "f");
    run(["debugfs", "-R", `dump ${file} ${out}`, image]);
    return new Uint8Array(readFileSync(out));
  } catch (e) {
    throw new Error(`cannot read ${file} from ${image}: ${(e as Error).message}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** e2fsck -fn: exit code and output (0: clean). */
export function fsckReadOnly(image: string): { code: number | null; out: string } {
  const p = Bun.spawnSync(["e2fsck", "-fn", image], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode, out: `${p.stdout}${p.stderr}` };
}
