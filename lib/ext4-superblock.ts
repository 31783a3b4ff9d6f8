/**
 * Reading an ext2/3/4 superblock (pure): enough to find a disk by its label
 * without blkid or udev, which a VM image may not have. The guest reads the
 * first {@link PROBE_BYTES} bytes of each disk and asks this module what they are.
 */

/** Bytes to read from the start of a device to probe it. */
export const PROBE_BYTES = 2048;
/** The superblock's offset on the device. */
const SB_OFFSET = 1024;
const EXT_MAGIC = 0xef53;

/** What the superblock says. */
export interface Ext4Superblock {
  /** The volume label (s_volume_name), "" when none. */
  label: string;
  /** The filesystem UUID, lower-case with dashes. */
  uuid: string;
  /** Filesystem size in bytes. */
  sizeBytes: number;
}

/**
 * Pure: the superblock from the first bytes of a device, or null when they
 * do not hold an ext2/3/4 filesystem. Never throws on any input.
 */
export function parseExt4Superblock(head: Uint8Array): Ext4Superblock | null {
  if (head.length < SB_OFFSET + 0x88) return null;
  const dv = new DataView(head.buffer, head.byteOffset + SB_OFFSET, head.length - SB_OFFSET);
  if (dv.getUint16(0x38, true) !== EXT_MAGIC) return null;
  const logBlock = dv.getUint32(0x18, true);
  if (logBlock > 6) return null; // block size 1 KiB … 64 KiB
  const blocks = dv.getUint32(0x04, true);
  const nameBytes = head.subarray(SB_OFFSET + 0x78, SB_OFFSET + 0x88);
  const end = nameBytes.indexOf(0);
  const label = new TextDecoder("utf-8", { fatal: false }).decode(
    end < 0 ? nameBytes : nameBytes.subarray(0, end),
  );
  const u = [...head.subarray(SB_OFFSET + 0x68, SB_OFFSET + 0x78)]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
  const uuid = `${u.slice(0, 8)}-${u.slice(8, 12)}-${u.slice(12, 16)}-${u.slice(16, 20)}-${u.slice(20)}`;
  return { label, uuid, sizeBytes: blocks * (1024 << logBlock) };
}

/** Pure: true when every byte is zero (a device never formatted). */
export function isBlank(head: Uint8Array): boolean {
  for (const b of head) if (b !== 0) return false;
  return true;
}
