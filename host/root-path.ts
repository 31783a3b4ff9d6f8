/**
 * Path resolution inside a rootfs, the way the booted VM will see it (pure:
 * the rootfs is read only through the `lookup` callback). Every format that
 * writes into an existing rootfs (a directory, an ext4 image) resolves its
 * paths here, so they all follow links the same way:
 *
 * - chroot semantics: an absolute link target starts again at the rootfs's
 *   "/", never the host's, and `..` cannot climb above "/";
 * - at most 40 links per path (Linux's limit), so a loop ends in an error,
 *   and at most 1024 names looked at (a bound on the cost of one path);
 * - a missing component of the path itself is a directory still to be
 *   created, but a link whose target does not exist (a dangling link) is
 *   refused: the injector would otherwise write where the guest will not
 *   look, or replace the link (see docs/injector.md);
 * - a name read from a link target can be refused by the caller (`checkName`)
 *   before it is looked up: the ext4 format passes only names debugfs cannot
 *   misparse.
 *
 * The result is canonical: every parent component is a real directory of the
 * rootfs (or one the caller is about to create), so the caller can act on it
 * without following any link.
 */
import { HeroError } from "../lib/errors.ts";

/** What `lookup` reports about one entry, its last component not followed. */
export type PathNode =
  | { type: "dir" }
  | { type: "file" }
  | { type: "other" }
  | { type: "symlink"; target: string };

/** Looks up a canonical guest path (its parents are real directories); null if absent. */
export type NodeLookup = (path: string) => PathNode | null;

/** Linux's limit on links followed while resolving one path (MAXSYMLINKS). */
export const MAX_LINKS = 40;
/**
 * Names looked at while resolving one path. The kernel has no such limit,
 * but 40 links of 4095 bytes could make one path cost 80,000 lookups (a
 * debugfs run each, for ext4); a real rootfs needs a few dozen.
 */
export const MAX_STEPS = 1024;

export interface ResolveOptions {
  /** Also follow a link in the last component (a directory that may be a link to one). */
  followLast?: boolean;
  /** The last component (followed) must be a directory, or missing from the path itself. */
  dir?: boolean;
  /**
   * Called with every name before it is looked up; returns why the name
   * cannot be used, or null. The error names the link the name came from.
   */
  checkName?: (name: string) => string | null;
}

/** A string from the rootfs, shown on one line (control characters, quotes escaped) and cut at `max`. */
export function show(str: string, max = 200): string {
  const s = str.length > max ? `${str.slice(0, max)}…(${str.length} chars)` : str;
  if (/^[\x21-\x7e]*$/.test(s) && !s.includes('"')) return s;
  // JSON escapes C0 controls; DEL and C1 (a terminal's CSI, 0x9b) too.
  return JSON.stringify(s).replace(
    /[\x7f-\x9f]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

interface Part {
  name: string;
  /** The link whose target this name comes from; null for the caller's own path. */
  via: { link: string; target: string } | null;
}

const split = (p: string, via: Part["via"]): Part[] =>
  p
    .split("/")
    .filter((s) => s !== "" && s !== ".")
    .map((name) => ({ name, via }));

const join = (parts: readonly string[]) => `/${parts.join("/")}`;

/**
 * Resolves an absolute guest path inside the rootfs. Returns the canonical
 * path of the entry (its last component followed only with `followLast`).
 * Throws HeroError for a loop, a dangling link, a file used as a directory
 * or a name `checkName` refuses, naming the path, the link and its target.
 */
export function resolveInRoot(path: string, lookup: NodeLookup, o: ResolveOptions = {}): string {
  if (!path.startsWith("/"))
    throw new HeroError("path", `${show(path)} is not an absolute path inside the rootfs`);
  const todo = split(path, null);
  const cur: string[] = [];
  let links = 0;
  // Once a component of the caller's own path is missing, everything after
  // it is to be created: there is nothing more to look up.
  let missing = false;
  const fail = (msg: string): never => {
    throw new HeroError("path", `${show(path)}: ${msg}`);
  };
  const from = (via: Part["via"]) =>
    via ? `${show(via.link)} in the rootfs is a symlink to ${show(via.target)}, and ` : "";
  for (let steps = 0; todo.length; steps++) {
    if (steps >= MAX_STEPS)
      fail(`its links in the rootfs take more than ${MAX_STEPS} steps to resolve`);
    const { name, via } = todo.shift() as Part;
    if (name === "..") {
      cur.pop(); // at "/" this stays "/"
      continue;
    }
    const last = todo.length === 0;
    const here = join([...cur, name]);
    if (missing || (last && !o.followLast && !o.dir)) {
      cur.push(name);
      continue;
    }
    const bad = o.checkName?.(name);
    if (bad) fail(`${from(via)}${show(here)} has ${bad}`);
    const node = lookup(here);
    if (!node) {
      if (via)
        fail(
          `${from(via)}${show(here)} does not exist there (a dangling link); create the link's target or remove the link, then inject again`,
        );
      missing = true;
      cur.push(name);
      continue;
    }
    if (node.type === "symlink") {
      if (++links > MAX_LINKS)
        fail(`more than ${MAX_LINKS} symlinks followed resolving it in the rootfs (a loop?)`);
      const via2 = { link: here, target: node.target };
      if (!node.target)
        fail(`${show(here)} in the rootfs is a symlink with an empty target (a dangling link)`);
      if (node.target.startsWith("/")) cur.length = 0;
      todo.unshift(...split(node.target, via2));
      continue;
    }
    if (node.type !== "dir" && (!last || o.dir))
      fail(`${from(via)}${show(here)} in the rootfs is a ${node.type}, not a directory`);
    cur.push(name);
  }
  return join(cur);
}

/** Pure: the canonical parent directory of a guest path and its last component. */
export function resolveParent(
  path: string,
  lookup: NodeLookup,
  o: Pick<ResolveOptions, "checkName"> = {},
): { dir: string; name: string; path: string } {
  const i = path.lastIndexOf("/");
  const name = path.slice(i + 1);
  if (!path.startsWith("/") || !name || name === "." || name === "..")
    throw new HeroError("path", `${show(path)} is not a clean absolute path inside the rootfs`);
  const dir = resolveInRoot(path.slice(0, i) || "/", lookup, { ...o, dir: true });
  return { dir, name, path: dir === "/" ? `/${name}` : `${dir}/${name}` };
}
