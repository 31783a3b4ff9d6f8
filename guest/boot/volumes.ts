/**
 * Boot step (after config and modules): `[[volumes]]`. Each volume's device
 * is found by virtio serial, ext label or path (waiting at most its `wait`
 * seconds), formatted only when it is blank and `mkfs = true`, and mounted
 * nosuid,nodev (noexec unless `exec = true`, read-only if asked). A volume
 * that cannot be mounted is a clear error on the console and the VM boots
 * on without it.
 */
import { chmodSync, chownSync, existsSync, mkdirSync, realpathSync } from "node:fs";
import { basename } from "node:path";
import { isBlank, parseExt4Superblock } from "../../lib/ext4-superblock.ts";
import { log } from "../../lib/log.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import { MS, mount } from "../../sys/ffi.ts";
import {
  disksWithLabel,
  diskWithSerial,
  ensureVirtioDisks,
  loadExt4,
  readHead,
  virtioDisks,
} from "./block.ts";
import type { BootContext, BootStep } from "./context.ts";

type Volume = VmConfig["volumes"][number];

/** Bytes that must all be zero for a device to count as blank (partition tables, most superblocks). */
const BLANK_BYTES = 1024 * 1024;

/** Pure: how a volume names its device, for messages. */
export function describeSource(v: Volume): string {
  if (v.serial !== undefined) return `serial "${v.serial}"`;
  if (v.label !== undefined) return `label "${v.label}"`;
  return `device ${v.device}`;
}

/** Pure: mount(2) flags for a volume. */
export function volumeFlags(v: Pick<Volume, "readonly" | "exec">): number {
  return MS.NOSUID | MS.NODEV | (v.exec ? 0 : MS.NOEXEC) | (v.readonly ? MS.RDONLY : 0);
}

function findNow(v: Volume): string | null {
  if (v.device !== undefined) return existsSync(v.device) ? v.device : null;
  if (v.serial !== undefined) {
    const d = diskWithSerial(virtioDisks(), v.serial);
    return d ? `/dev/${d}` : null;
  }
  const d = disksWithLabel(virtioDisks(), v.label ?? "")[0];
  return d ? `/dev/${d}` : null;
}

/** The volume's device, waiting at most `wait` seconds; null when it never shows. */
async function findDevice(v: Volume): Promise<string | null> {
  const end = Date.now() + v.wait * 1000;
  for (;;) {
    const dev = findNow(v);
    if (dev || Date.now() >= end) return dev;
    await Bun.sleep(100);
  }
}

const MKFS_DIRS = ["/sbin", "/usr/sbin", "/bin", "/usr/bin"];

/** The rootfs's mkfs: e2fsprogs' mkfs.<fs> or mke2fs, else busybox's mke2fs (ext2 only). */
export function mkfsArgv(v: Volume, dev: string, dirs: readonly string[] = MKFS_DIRS): string[] {
  const label = v.label ? ["-L", v.label] : [];
  for (const name of [`mkfs.${v.fs}`, "mke2fs"]) {
    for (const dir of dirs) {
      const tool = `${dir}/${name}`;
      if (!existsSync(tool)) continue;
      if (basename(realpathSync(tool)) === "busybox") {
        log.warn(
          "volumes",
          `${v.path}: ${tool} is busybox's: it makes ext2 (mounted by the ext4 driver)`,
        );
        return [tool, "-F", ...label, dev];
      }
      return [tool, "-q", "-F", "-t", v.fs, ...label, dev];
    }
  }
  throw new Error(
    `${dev} is blank and mkfs = true, but the rootfs has no mkfs.${v.fs} or mke2fs (install e2fsprogs)`,
  );
}

/** Makes sure `dev` holds an ext filesystem: formats it only when blank and asked to. */
async function ensureFilesystem(v: Volume, dev: string): Promise<void> {
  const head = readHead(dev, BLANK_BYTES);
  if (!head) throw new Error(`${dev} cannot be read`);
  if (parseExt4Superblock(head)) return;
  if (!isBlank(head))
    throw new Error(
      `${dev} holds no ext filesystem and is not blank: not mounted (mkfs never formats a device with data on it)`,
    );
  if (!v.mkfs) throw new Error(`${dev} is blank: set mkfs = true to format it at boot`);
  const argv = mkfsArgv(v, dev);
  log.info("volumes", `${v.path}: formatting blank ${dev} (${argv.join(" ")})`);
  // Loaded only here: formatting is rare, and the boot path stays small.
  const { failureMessage, runCommand } = await import("../../sys/command.ts");
  const r = runCommand(argv, { maxOutput: 1024 * 1024 });
  if (r.code !== 0) throw new Error(failureMessage(argv[0] ?? "mkfs", r));
}

/** Mounts one volume; throws with the reason. */
async function mountVolume(ctx: BootContext, v: Volume): Promise<void> {
  const dev = await findDevice(v);
  if (!dev) throw new Error(`no device with ${describeSource(v)} after ${v.wait} s`);
  await ensureFilesystem(v, dev);
  mkdirSync(v.path, { recursive: true, mode: 0o755 });
  mount(dev, v.path, v.fs, volumeFlags(v));
  ctx.mounted.push(v.path);
  if (!v.readonly) {
    if (v.owner) {
      const [uid, gid] = v.owner.split(":").map(Number);
      chownSync(v.path, uid ?? 0, gid ?? 0);
    }
    if (v.mode) chmodSync(v.path, Number.parseInt(v.mode, 8));
  } else if (v.owner || v.mode) {
    log.warn("volumes", `${v.path}: owner/mode not applied: the volume is read-only`);
  }
  log.info(
    "volumes",
    `${dev} (${describeSource(v)}) on ${v.path}${v.readonly ? " (read-only)" : ""}`,
  );
}

/** The volumes step. */
export const volumesStep: BootStep = {
  name: "volumes",
  async run(ctx) {
    const vols = ctx.config.volumes;
    if (vols.length === 0) return;
    await ensureVirtioDisks();
    loadExt4();
    for (const v of vols) {
      try {
        await mountVolume(ctx, v);
      } catch (e) {
        log.error(
          "volumes",
          `VOLUME ERROR ${v.path} (${describeSource(v)}): ${(e as Error).message}`,
        );
      }
    }
  },
};
