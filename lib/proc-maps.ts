/**
 * Reading /proc/<pid>/maps (pure: the file's text in, ranges out).
 * A line is `start-end perms offset dev inode [path]`, addresses in hex.
 */

/** One mapping: its start address and length in bytes. */
export interface MapRange {
  start: bigint;
  length: bigint;
}

/**
 * The read-only mappings of `path` (its code and constants): the ranges whose
 * pages are clean copies of the file, which the kernel can drop and read
 * again on use. Writable mappings are left out: their pages may be private
 * copies that exist nowhere else.
 */
export function readOnlyFileRanges(maps: string, path: string): MapRange[] {
  const out: MapRange[] = [];
  for (const line of maps.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+ +(.*)$/.exec(line);
    if (!m || m[4] !== path || m[3]?.[1] !== "-") continue;
    const start = BigInt(`0x${m[1]}`);
    const end = BigInt(`0x${m[2]}`);
    if (end > start) out.push({ start, length: end - start });
  }
  return out;
}
