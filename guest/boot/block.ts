/**
 * Finding virtio disks at boot, for the config disk and volumes: no udev, no
 * blkid. Cheap when there is none: one look at /sys/block and the PCI
 * devices; the virtio_blk driver is loaded only when a virtio-blk device
 * exists and the driver has not claimed it yet.
 */
import { closeSync, constants, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import {
  type Ext4Superblock,
  PROBE_BYTES,
  parseExt4Superblock,
} from "../../lib/ext4-superblock.ts";
import { log } from "../../lib/log.ts";
import { loadModules } from "./modules.ts";

const PCI = "/sys/bus/pci/devices";
/** virtio-blk's PCI ids (vendor 0x1af4): transitional and modern. */
const VIRTIO_BLK_IDS = new Set(["0x1001", "0x1042"]);

function readOr(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

/** virtio disks the kernel shows (vda, vdb, …), sorted. */
export function virtioDisks(): string[] {
  try {
    return readdirSync("/sys/block")
      .filter((n) => /^vd[a-z]+$/.test(n))
      .sort((a, b) => a.length - b.length || a.localeCompare(b));
  } catch {
    return [];
  }
}

/** How many virtio-blk PCI devices the machine has (with or without a driver). */
export function virtioBlkPciCount(): number {
  let n = 0;
  try {
    for (const d of readdirSync(PCI)) {
      if (readOr(`${PCI}/${d}/vendor`) !== "0x1af4") continue;
      if (VIRTIO_BLK_IDS.has(readOr(`${PCI}/${d}/device`))) n++;
    }
  } catch {
    // no sysfs: no disks to find
  }
  return n;
}

/**
 * The virtio disks, after loading virtio_pci and virtio_blk (best effort)
 * when a virtio-blk device has no block device yet. Waits at most `waitMs`
 * for the driver to show them.
 */
export async function ensureVirtioDisks(waitMs = 2000): Promise<string[]> {
  const want = virtioBlkPciCount();
  let disks = virtioDisks();
  if (disks.length >= want) return disks;
  loadModules([], undefined, ["virtio_pci", "virtio_blk"]);
  const end = Date.now() + waitMs;
  for (;;) {
    disks = virtioDisks();
    if (disks.length >= want || Date.now() >= end) break;
    await Bun.sleep(20);
  }
  if (disks.length < want)
    log.warn(
      "disks",
      `${want} virtio-blk devices, ${disks.length} block devices (virtio_blk missing?)`,
    );
  return disks;
}

/**
 * The first `n` bytes of a device (fewer if it is smaller); null if it
 * cannot be read. `exclusive`: opened O_EXCL, which the kernel refuses
 * (EBUSY) for a block device in use, i.e. mounted (the root disk, an
 * overlay's read-only lower layer) or holding a mounted partition.
 */
export function readHead(dev: string, n = PROBE_BYTES, exclusive = false): Uint8Array | null {
  let fd = -1;
  try {
    fd = openSync(dev, exclusive ? constants.O_RDONLY | constants.O_EXCL : "r");
    const buf = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      const r = readSync(fd, buf, got, n - got, got);
      if (r <= 0) break;
      got += r;
    }
    return buf.subarray(0, got);
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** The ext superblock of /dev/<name>, or null (also for a disk in use: opened O_EXCL). */
export function probe(name: string): Ext4Superblock | null {
  const head = readHead(`/dev/${name}`, PROBE_BYTES, true);
  return head ? parseExt4Superblock(head) : null;
}

/**
 * The disks (names) whose ext filesystem has `label`, among those not in
 * use: the config disk and a volume are found before anything mounts them,
 * so a mounted disk (the root, whatever its label says: a hostile image may
 * call itself HEROCFG) is never taken for one, and its superblock is not
 * read (~20 ms under TCG).
 */
export function disksWithLabel(disks: readonly string[], label: string): string[] {
  return disks.filter((d) => probe(d)?.label === label);
}

/** The disk (name) whose virtio serial is `serial`, or null. */
export function diskWithSerial(disks: readonly string[], serial: string): string | null {
  return disks.find((d) => readOr(`/sys/block/${d}/serial`) === serial) ?? null;
}

/** Loads what mounting ext2/3/4 needs (best effort: built in on some kernels). */
export function loadExt4(): void {
  loadModules([], undefined, ["crc32c_generic", "ext4"]);
}
