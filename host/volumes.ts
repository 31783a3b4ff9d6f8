/**
 * Volume images on the host: deploy_vm makes one per `[[volumes]]` entry
 * with `size_mb` — sparse, mke2fs'ed (left blank when the volume asks the
 * guest to `mkfs`) — in <out>/volumes/, and never touches one that exists:
 * a redeploy of the root keeps the data.
 */
import { closeSync, existsSync, ftruncateSync, mkdirSync, openSync, renameSync } from "node:fs";
import { join } from "node:path";
import { HeroError } from "../lib/errors.ts";
import type { VmConfig } from "../lib/vm-config.ts";
import { runChecked } from "../sys/command.ts";

type Volume = VmConfig["volumes"][number];

/** A volume image deploy_vm attached, in deployment.json. */
export interface VolumeImage {
  path: string;
  /** The virtio-blk serial QEMU gives the disk (the volume's `serial`). */
  serial?: string;
  /** The mount point in the guest (for the operator). */
  mount: string;
}

/** Pure: the image's file name: by serial, else by label, else by mount point. */
export function volumeImageName(v: Volume): string {
  if (v.serial) return `${v.serial}.img`;
  if (v.label) return `label-${v.label}.img`;
  return `path${v.path.replaceAll("/", "-")}.img`;
}

/**
 * Creates the images of the volumes that have `size_mb` and no image yet;
 * returns every such volume's image (new or kept) and a note for each.
 */
export function ensureVolumeImages(
  out: string,
  volumes: readonly Volume[],
  say: (msg: string) => void = () => {},
): VolumeImage[] {
  const images: VolumeImage[] = [];
  const owner = new Map<string, string>();
  for (const v of volumes) {
    if (v.size_mb === undefined) continue;
    const name = volumeImageName(v);
    // Names can meet ("/a/b" and "/a-b", serial "label-L" and label "L"): one image must not serve two volumes.
    const other = owner.get(name);
    if (other !== undefined)
      throw new HeroError(
        "deploy",
        `volumes ${other} and ${v.path} would share the image ${name}: give one of them a serial`,
        { field: "volumes" },
      );
    owner.set(name, v.path);
  }
  for (const v of volumes) {
    if (v.size_mb === undefined) continue;
    const dir = join(out, "volumes");
    const path = join(dir, volumeImageName(v));
    images.push({ path, mount: v.path, ...(v.serial ? { serial: v.serial } : {}) });
    if (existsSync(path)) {
      say(`volume ${v.path}: keeping ${path}`);
      continue;
    }
    mkdirSync(dir, { recursive: true });
    const tmp = `${path}.tmp`;
    const fd = openSync(tmp, "w", 0o600);
    try {
      ftruncateSync(fd, v.size_mb * 1024 * 1024); // sparse: no block is written
    } finally {
      closeSync(fd);
    }
    if (!v.mkfs) {
      runChecked(
        [
          "mke2fs",
          "-q",
          "-F",
          "-t",
          v.fs,
          "-E",
          "root_owner=0:0",
          ...(v.label ? ["-L", v.label] : []),
          tmp,
        ],
        { what: `mke2fs (volume ${v.path})` },
      );
    }
    renameSync(tmp, path);
    say(
      `volume ${v.path}: created ${path} (${v.size_mb} MiB${v.mkfs ? ", blank: the guest formats it" : ""})`,
    );
  }
  return images;
}
