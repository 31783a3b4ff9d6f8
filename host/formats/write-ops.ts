/**
 * Pure: turns the injection plan into the list of operations on an existing
 * rootfs (a directory or an ext4 image), every path already resolved inside
 * the rootfs (host/root-path.ts) and every conflict refused, before
 * the first write. The formats then only execute the list: the directory
 * format with a journal it rolls back on any error, the ext4 format as one
 * debugfs script on a copy. An entry already in place yields no operation,
 * so a re-run changes nothing.
 */

import { HeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import type { PlanEntry } from "../plan.ts";
import { type NodeLookup, resolveInRoot, resolveParent, show } from "../root-path.ts";

/** What is at a canonical path of the rootfs (the last component not followed). */
export type Entry =
  | { type: "dir"; mode: number; uid: number; gid: number }
  | { type: "file"; mode: number; uid: number; gid: number; sha256: () => string }
  | { type: "symlink"; target: string }
  | { type: "other" };

/** Looks up a canonical path; null if absent. */
export type EntryLookup = (path: string) => Entry | null;

type Owner = { mode: number; uid: number; gid: number };

/**
 * One operation, on a canonical path (its parents are directories of the
 * rootfs, or ones created by earlier operations). `entry` is the plan path
 * it comes from, for messages. `replaces`: what is at `path` now.
 */
export type WriteOp =
  | ({ op: "mkdir"; path: string; entry: string } & Owner)
  | ({ op: "chmod"; path: string; entry: string; was: Owner } & Owner)
  | { op: "aside"; path: string; to: string; entry: string }
  | ({
      op: "file";
      path: string;
      entry: string;
      data: Uint8Array;
      sha256: string;
      replaces: Entry["type"] | null;
    } & Owner)
  | {
      op: "symlink";
      path: string;
      entry: string;
      target: string;
      uid: number;
      gid: number;
      replaces: Entry["type"] | null;
    };

export interface PlanWritesOptions {
  /** Whether owners are enforced (false: a directory injected without root). */
  owners: boolean;
  /** Names the format cannot carry (see resolveInRoot). */
  checkName?: (name: string) => string | null;
}

const baseOf = (p: string) => p.slice(p.lastIndexOf("/") + 1);
const baseDir = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";

/**
 * Pure (reads the rootfs only through `lookup`): the operations that make
 * the rootfs hold the plan. Throws HeroError, naming the plan path and
 * what is in the way, for a dangling link, a loop, a file where a directory
 * must be or a directory where a file must be.
 */
export function planWrites(
  plan: readonly PlanEntry[],
  lookup: EntryLookup,
  o: PlanWritesOptions,
): WriteOp[] {
  // What earlier operations will have made of a path: consulted before the rootfs.
  const overlay = new Map<string, Entry | null>();
  // Directories this plan creates: nothing is in them yet, no need to look.
  const created = new Set<string>();
  const view = (p: string): Entry | null => {
    if (overlay.has(p)) return overlay.get(p) ?? null;
    return created.has(baseDir(p)) ? null : lookup(p);
  };
  const nodes: NodeLookup = (p) => view(p);
  const ops: WriteOp[] = [];
  const ownerDiffers = (cur: Owner, e: Owner) =>
    cur.mode !== e.mode || (o.owners && (cur.uid !== e.uid || cur.gid !== e.gid));
  const refuse = (e: PlanEntry, msg: string): never => {
    throw new HeroError("path", `${e.path}: ${msg}; refusing to replace it`);
  };

  for (const e of plan) {
    const at = resolveParent(e.path, nodes, { checkName: o.checkName });
    let cur = view(at.path);
    if (e.kind === "dir") {
      if (!cur) {
        ops.push({
          op: "mkdir",
          path: at.path,
          entry: e.path,
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
        });
        overlay.set(at.path, { type: "dir", mode: e.mode, uid: e.uid, gid: e.gid });
        created.add(at.path);
        continue;
      }
      // An existing directory, or a link to one (usr-merge: /sbin -> usr/sbin), is used as it is.
      const dir =
        cur.type === "symlink"
          ? resolveInRoot(at.path, nodes, { dir: true, checkName: o.checkName })
          : at.path;
      const d = cur.type === "symlink" ? view(dir) : cur;
      if (d?.type !== "dir")
        refuse(e, `${show(at.path)} exists in the rootfs and is not a directory`);
      const has = d as Extract<Entry, { type: "dir" }>;
      // Only hero-init's own directories get their mode (and owner) enforced.
      if (e.own && ownerDiffers(has, e)) {
        ops.push({
          op: "chmod",
          path: dir,
          entry: e.path,
          mode: e.mode,
          uid: o.owners ? e.uid : has.uid,
          gid: o.owners ? e.gid : has.gid,
          was: { mode: has.mode, uid: has.uid, gid: has.gid },
        });
        overlay.set(dir, { type: "dir", mode: e.mode, uid: e.uid, gid: e.gid });
      }
      continue;
    }
    if (cur?.type === "dir")
      refuse(e, `${show(at.path)} is a directory in the rootfs, where a ${e.kind} goes`);
    if (e.kind === "symlink" && cur?.type === "symlink" && cur.target === e.target) continue;
    if (
      e.kind === "file" &&
      cur?.type === "file" &&
      !ownerDiffers(cur, e) &&
      cur.sha256() === e.sha256
    )
      continue;
    if (e.path === LAYOUT.sbinInit && cur) {
      // An existing /sbin/init is kept as /sbin/init.before-hero, unless that
      // exists already or this one is hero-init's own (an older layout).
      const to = `${at.dir === "/" ? "" : at.dir}/${baseOf(LAYOUT.sbinInitAside)}`;
      const ours = cur.type === "symlink" && cur.target.includes("/hero/");
      if (!view(to) && !ours) {
        ops.push({ op: "aside", path: at.path, to, entry: e.path });
        overlay.set(to, cur);
        overlay.set(at.path, null);
        cur = null;
      }
    }
    const replaces = cur ? cur.type : null;
    if (e.kind === "symlink") {
      ops.push({
        op: "symlink",
        path: at.path,
        entry: e.path,
        target: e.target,
        uid: e.uid,
        gid: e.gid,
        replaces,
      });
      overlay.set(at.path, { type: "symlink", target: e.target });
    } else {
      const sha = e.sha256;
      ops.push({
        op: "file",
        path: at.path,
        entry: e.path,
        data: e.data,
        sha256: sha,
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        replaces,
      });
      overlay.set(at.path, {
        type: "file",
        mode: e.mode,
        uid: e.uid,
        gid: e.gid,
        sha256: () => sha,
      });
    }
  }
  return ops;
}
