/**
 * A rootfs directory. Paths are resolved the way the booted VM will see them
 * (host/root-path.ts): links in the rootfs, even absolute ones like
 * /lib -> /usr/lib, are followed inside the root, never on the host; `..`
 * stops at its "/"; a dangling link on a path hero-init writes is refused.
 * Every write is planned first (formats/write-ops.ts), then applied with a
 * journal: on any error every step is undone in reverse, so the rootfs is
 * left as it was (paths, types, modes, owners, link targets, contents). Files
 * and links are written to a temp name and renamed over the old entry, so a
 * crash never leaves a half-written file; unchanged entries are not touched.
 */

import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  fsyncSync,
  lchownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { type PlanEntry, sha256 } from "../plan.ts";
import { resolveParent } from "../root-path.ts";
import { type ApplyResult, checkReadSize, type Existing, type RootfsFormat } from "./types.ts";
import { type Entry, planWrites, type WriteOp } from "./write-ops.ts";

/** The host operations the directory format uses (a test can make any of them fail). */
export interface HostFs {
  mkdir(path: string, mode: number): void;
  rmdir(path: string): void;
  chmod(path: string, mode: number): void;
  chown(path: string, uid: number, gid: number): void;
  lchown(path: string, uid: number, gid: number): void;
  /** Creates a new file (never overwrites) with `data`, flushed to disk. */
  writeNew(path: string, data: Uint8Array, mode: number): void;
  utimes(path: string, time: number): void;
  symlink(target: string, path: string): void;
  /** A hard link (of a symlink itself, not what it points to). */
  link(from: string, to: string): void;
  rename(from: string, to: string): void;
  unlink(path: string): void;
}

/** The real file system. */
export const hostFs: HostFs = {
  mkdir: (p, mode) => mkdirSync(p, { mode }),
  rmdir: (p) => rmdirSync(p),
  chmod: (p, mode) => chmodSync(p, mode),
  chown: (p, uid, gid) => chownSync(p, uid, gid),
  lchown: (p, uid, gid) => lchownSync(p, uid, gid),
  writeNew(p, data, mode) {
    const fd = openSync(p, "wx", mode);
    try {
      for (let off = 0; off < data.length; ) off += writeSync(fd, data, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  },
  utimes: (p, t) => utimesSync(p, t, t),
  symlink: (target, p) => symlinkSync(target, p),
  link: (from, to) => linkSync(from, to),
  rename: (from, to) => renameSync(from, to),
  unlink: (p) => unlinkSync(p),
};

/** What is at a canonical guest path of the rootfs at `root` (last component not followed). */
export function entryAt(root: string, path: string): Entry | null {
  const host = join(root, path);
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(host);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new HeroError("read", `cannot read ${path} in ${root}: ${(e as Error).message}`, {
      file: root,
    });
  }
  const own = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  if (st.isSymbolicLink()) return { type: "symlink", target: readlinkSync(host) };
  if (st.isDirectory()) return { type: "dir", ...own };
  if (st.isFile()) return { type: "file", ...own, sha256: () => sha256(readFileSync(host)) };
  return { type: "other" };
}

/**
 * Executes `ops` (from planWrites) in the rootfs at `root`; on any error
 * undoes every step taken, in reverse, and throws an input error saying what
 * failed and that the rootfs is unchanged (or what could not be undone).
 */
export function applyWrites(
  root: string,
  ops: readonly WriteOp[],
  o: { mtime: number; owners: boolean },
  fs: HostFs = hostFs,
): ApplyResult {
  const host = (p: string) => join(root, p);
  const undo: (() => void)[] = [];
  const commit: (() => void)[] = [];
  const notes: string[] = [];
  let n = 0;
  const temp = (p: string, what: string) => join(p, "..", `.hero-${what}-${process.pid}-${n++}`);
  const gone = (f: () => void) => () => {
    try {
      f();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  };
  let current: WriteOp | null = null;
  try {
    for (const op of ops) {
      current = op;
      const h = host(op.path);
      if (op.op === "mkdir") {
        fs.mkdir(h, op.mode);
        undo.push(() => fs.rmdir(h));
        fs.chmod(h, op.mode); // mkdir's mode is cut by the umask
        if (o.owners) fs.chown(h, op.uid, op.gid);
      } else if (op.op === "chmod") {
        fs.chmod(h, op.mode);
        undo.push(() => fs.chmod(h, op.was.mode));
        if (o.owners) {
          fs.chown(h, op.uid, op.gid);
          undo.push(() => fs.chown(h, op.was.uid, op.was.gid));
        }
      } else if (op.op === "aside") {
        const to = host(op.to);
        if (entryAt(root, op.to)) throw new Error(`${op.to} appeared while writing`);
        fs.rename(h, to);
        undo.push(() => fs.rename(to, h));
        notes.push(`${LAYOUT.sbinInit} kept as ${LAYOUT.sbinInitAside}`);
      } else {
        const tmp = temp(h, "tmp");
        const dropTmp = gone(() => fs.unlink(tmp));
        try {
          if (op.op === "file") fs.writeNew(tmp, op.data, op.mode);
          else fs.symlink(op.target, tmp);
        } catch (e) {
          // Half-written (a full disk): removed; someone else's (EEXIST): left alone.
          if ((e as NodeJS.ErrnoException).code !== "EEXIST") dropTmp();
          throw e;
        }
        undo.push(dropTmp);
        if (op.op === "file") {
          // Owner first: chown(2) clears set-user-ID and set-group-ID, even as root.
          if (o.owners) fs.chown(tmp, op.uid, op.gid);
          fs.chmod(tmp, op.mode);
          fs.utimes(tmp, o.mtime);
        } else if (o.owners) fs.lchown(tmp, op.uid, op.gid);
        if (op.replaces) {
          // Keep the old entry under a second name until everything is written.
          const old = temp(h, "old");
          fs.link(h, old);
          let swapped = false;
          undo.push(() => (swapped ? fs.rename(old, h) : fs.unlink(old)));
          commit.push(() => fs.unlink(old));
          fs.rename(tmp, h);
          swapped = true;
        } else {
          fs.rename(tmp, h);
          undo.push(() => fs.unlink(h));
        }
      }
    }
  } catch (e) {
    const failed: string[] = [];
    for (const u of undo.reverse()) {
      try {
        u();
      } catch (ue) {
        failed.push((ue as Error).message);
      }
    }
    const what = current ? `writing ${current.entry}` : "writing";
    throw new HeroError(
      "write",
      `${what} into ${root} failed: ${(e as Error).message}; ${
        failed.length
          ? `rolling back failed too, the rootfs is NOT as it was: ${failed.join("; ")}`
          : "every change was rolled back, the rootfs is as it was"
      }`,
      { file: root },
    );
  }
  for (const c of commit) {
    try {
      c();
    } catch (e) {
      notes.push(`could not remove a backup: ${(e as Error).message}`);
    }
  }
  return { changed: ops.filter((x) => x.op !== "aside").length, notes };
}

/** Opens a rootfs directory. */
export function dirFormat(root: string): RootfsFormat {
  const at = (p: string) => entryAt(root, p);
  const lookup = async (path: string): Promise<Existing | null> => {
    let e: Entry | null;
    let host: string;
    try {
      const p = resolveParent(path, at).path;
      host = join(root, p);
      e = at(p);
    } catch {
      return null; // a dangling link or a file on the way: nothing there
    }
    if (e?.type !== "file") return e;
    const { sha256: _, ...rest } = e;
    return {
      ...rest,
      data: async (maxBytes) => {
        if (maxBytes !== undefined) checkReadSize(path, statSync(host).size, maxBytes);
        return new Uint8Array(readFileSync(host));
      },
    };
  };

  return {
    kind: "dir",
    exists: async () => existsSync(root),
    lookup,
    async apply(plan: readonly PlanEntry[], { mtime }) {
      const owners = process.getuid?.() === 0;
      // Every path resolved and every conflict refused before the first write.
      const ops = planWrites(plan, at, { owners });
      return applyWrites(root, ops, { mtime, owners });
    },
  };
}
