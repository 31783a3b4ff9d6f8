/**
 * A rootfs directory. Paths are resolved with chroot semantics: a symlink in
 * the rootfs (even an absolute one, like /lib -> /usr/lib) is followed inside
 * the root, never on the host, and a path that would leave the root is
 * refused. Files are written to a temp name and renamed, so a crash never
 * leaves a half-written file; unchanged entries are not touched.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, posix } from "node:path";
import { InputError } from "../../lib/errors.ts";
import { LAYOUT, type PlanEntry, sha256 } from "../plan.ts";
import type { ApplyResult, Existing, RootfsFormat } from "./types.ts";

/**
 * Resolves the parent chain of a guest path inside `root`, following
 * symlinks as the guest would see them. Returns the host path of the entry
 * itself (its last component is not followed). Throws if it escapes.
 */
export function resolveInRoot(root: string, guestPath: string, depth = 0): string {
  if (depth > 40) throw new InputError("path", `too many symlinks resolving ${guestPath}`);
  const parts = posix.normalize(guestPath).split("/").filter(Boolean);
  let cur = "/";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (part === "..") {
      cur = posix.dirname(cur);
      continue;
    }
    const next = posix.join(cur, part);
    const last = i === parts.length - 1;
    let st: ReturnType<typeof lstatSync> | null = null;
    try {
      st = lstatSync(join(root, next));
    } catch {
      st = null;
    }
    if (!last && st?.isSymbolicLink()) {
      const target = readlinkSync(join(root, next));
      const abs = target.startsWith("/") ? target : posix.join(cur, target);
      const rest = parts.slice(i + 1).join("/");
      return resolveInRoot(root, posix.join(abs, rest), depth + 1);
    }
    cur = next;
  }
  const host = join(root, cur);
  if (host !== root && !host.startsWith(`${root.replace(/\/$/, "")}/`)) {
    throw new InputError("path", `${guestPath} resolves outside the rootfs`);
  }
  return host;
}

/** Opens a rootfs directory. */
export function dirFormat(root: string): RootfsFormat {
  const lookup = async (path: string): Promise<Existing | null> => {
    let host: string;
    try {
      host = resolveInRoot(root, path);
    } catch {
      return null;
    }
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(host);
    } catch {
      return null;
    }
    if (st.isSymbolicLink()) return { type: "symlink", target: readlinkSync(host) };
    if (st.isDirectory()) return { type: "dir", mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
    if (st.isFile())
      return {
        type: "file",
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        data: async () => new Uint8Array(readFileSync(host)),
      };
    return { type: "other" };
  };

  return {
    kind: "dir",
    exists: async () => existsSync(root),
    lookup,
    async apply(plan, { mtime }) {
      const res: ApplyResult = { changed: 0, notes: [] };
      // Validate every path first: nothing is written if one escapes.
      const hosts = plan.map((e) => resolveInRoot(root, e.path));
      const canChown = process.getuid?.() === 0;
      for (const [i, e] of plan.entries()) {
        const host = hosts[i] as string;
        const cur = await lookup(e.path);
        if (
          e.path === LAYOUT.sbinInit &&
          cur &&
          !(cur.type === "symlink" && e.kind === "symlink" && cur.target === e.target)
        ) {
          const aside = resolveInRoot(root, LAYOUT.sbinInitAside);
          if (!existsSync(aside) && !(cur.type === "symlink" && cur.target.includes("/hero/"))) {
            renameSync(host, aside);
            res.notes.push(`${LAYOUT.sbinInit} kept as ${LAYOUT.sbinInitAside}`);
          }
        }
        if (dirSatisfied(root, e, cur)) continue;
        if (write(host, e, cur, mtime, canChown)) res.changed++;
      }
      return res;
    },
  };
}

/** A directory entry is satisfied by an existing directory, or a symlink to one (usr-merge: /sbin -> usr/sbin). */
function dirSatisfied(root: string, e: PlanEntry, cur: Existing | null): boolean {
  if (e.kind !== "dir" || !cur) return false;
  if (cur.type === "dir") return !e.own || cur.mode === e.mode;
  if (cur.type !== "symlink") return false;
  try {
    return statSync(dirname(resolveInRoot(root, `${e.path}/probe`))).isDirectory();
  } catch {
    return false;
  }
}

function same(e: PlanEntry, cur: Existing | null): boolean | Promise<boolean> {
  if (!cur) return false;
  if (e.kind === "dir") return cur.type === "dir" && (!e.own || cur.mode === e.mode);
  if (e.kind === "symlink") return cur.type === "symlink" && cur.target === e.target;
  return false;
}

function write(
  host: string,
  e: PlanEntry,
  cur: Existing | null,
  mtime: number,
  canChown: boolean,
): boolean {
  if (same(e, cur) === true) return false;
  if (e.kind === "dir") {
    if (cur && cur.type !== "dir") rmSync(host, { force: true });
    mkdirSync(host, { recursive: true });
    chmodSync(host, e.mode);
    if (canChown) chownSync(host, e.uid, e.gid);
    return true;
  }
  if (e.kind === "symlink") {
    const tmp = `${host}.hero-tmp`;
    rmSync(tmp, { force: true });
    symlinkSync(e.target, tmp);
    renameSync(tmp, host);
    return true;
  }
  if (cur?.type === "file") {
    const st = lstatSync(host);
    if (
      st.size === e.data.length &&
      (st.mode & 0o7777) === e.mode &&
      sha256(readFileSync(host)) === e.sha256
    ) {
      if (!canChown || (st.uid === e.uid && st.gid === e.gid)) return false;
    }
  }
  if (cur?.type === "dir")
    throw new InputError(
      "path",
      `${e.path} is a directory in the rootfs; refusing to replace it with a file`,
    );
  const tmp = join(dirname(host), `.${host.split("/").at(-1)}.hero-tmp`);
  writeFileSync(tmp, e.data, { mode: e.mode });
  chmodSync(tmp, e.mode);
  if (canChown) chownSync(tmp, e.uid, e.gid);
  utimesSync(tmp, mtime, mtime);
  renameSync(tmp, host);
  return true;
}
