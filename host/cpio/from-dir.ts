/**
 * Builds cpio entries from a directory tree (I/O): sorted paths so the
 * archive is reproducible, ownership and mtime overridable (root-owned and
 * SOURCE_DATE_EPOCH in images), device nodes and fifos kept.
 */
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import type { CpioEntry } from "./newc.ts";

/** Options for {@link entriesFromDir}. */
export interface FromDirOptions {
  /** Every entry's mtime (seconds); default: the file's own. */
  mtime?: number;
  /** Every entry's owner; default 0:0. */
  owner?: { uid: number; gid: number };
  /** Prefix for archive paths (e.g. "" for the root). */
  prefix?: string;
}

/** Walks `root` and returns its entries, parents before children, sorted by path. */
export function entriesFromDir(root: string, o: FromDirOptions = {}): CpioEntry[] {
  const out: CpioEntry[] = [];
  const owner = o.owner ?? { uid: 0, gid: 0 };
  const walk = (rel: string) => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(root, r));
      const path = o.prefix ? `${o.prefix}/${r}` : r;
      const common = {
        path,
        uid: owner.uid,
        gid: owner.gid,
        mtime: o.mtime ?? Math.floor(st.mtimeMs / 1000),
      };
      const mode = st.mode & 0o7777;
      if (st.isSymbolicLink())
        out.push({ ...common, type: "symlink", target: readlinkSync(join(root, r)) });
      else if (st.isDirectory()) {
        out.push({ ...common, type: "dir", mode });
        walk(r);
      } else if (st.isFile())
        out.push({
          ...common,
          type: "file",
          mode,
          data: new Uint8Array(readFileSync(join(root, r))),
        });
      else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const rdev = st.rdev;
        const major = Number((BigInt(rdev) >> 8n) & 0xfffn);
        const minor = Number((BigInt(rdev) & 0xffn) | ((BigInt(rdev) >> 12n) & 0xfff00n));
        out.push({
          ...common,
          type: st.isCharacterDevice() ? "char" : "block",
          mode,
          major,
          minor,
        });
      } else if (st.isFIFO()) out.push({ ...common, type: "fifo", mode });
    }
  };
  walk("");
  return out;
}
