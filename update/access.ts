/**
 * Applies an environment's access section (lib/access.ts) on this machine,
 * as a step of every update run, on nodes and in VMs: the pure plan's
 * edits, each skipped when the machine already matches, then the record of
 * what hero-init manages (access.json in the state dir, 0600).
 *
 * Files are written by temp file → owner and mode → fsync → rename, so
 * sshd and sudo see the old file or the new one. A sudoers drop-in is
 * checked with `visudo -c -f` on its temporary name (which has a ".", so
 * sudo ignores it) when visudo exists. Nothing here follows a link a user
 * could plant: a home or .ssh that is a symlink is replaced by a real
 * directory, and the final rename replaces rather than follows.
 */
import {
  closeSync,
  constants,
  existsSync,
  fchmodSync,
  fchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import {
  type AccessEdit,
  type AccessPlan,
  type AccessRecord,
  lostKeys,
  planAccess,
} from "../lib/access.ts";
import { atomicWrite } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import type { Manifest } from "../lib/manifest.ts";
import { runCommand } from "../sys/command.ts";
import type { Run } from "./types.ts";

/** What an access step did (or, with --check, would do). */
export interface AccessResult {
  env: string;
  /** Paths written or removed (machine paths, without the root prefix). */
  changed: string[];
  /** One line per user added, updated or removed. */
  users: string[];
  sshd: boolean;
  /** Users whose open sessions were ended (removed, or a key revoked). */
  ended?: string[];
}

const RECORD = "access.json";

/** What hero-init manages on this machine (access.json; none yet: no users). */
export function readAccessRecord(stateDir: string): AccessRecord {
  try {
    const r = JSON.parse(readFileSync(join(stateDir, RECORD), "utf8")) as AccessRecord;
    return r?.users && typeof r.users === "object" ? r : { users: {} };
  } catch {
    return { users: {} };
  }
}

/** A file's text; "" when it cannot be read (an absent account file is an empty one). */
export const readText = (path: string) => {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
};

/** Whether an edit would change nothing on the machine. */
function inPlace(e: AccessEdit, at: string): boolean {
  let st: ReturnType<typeof lstatSync>;
  try {
    st = lstatSync(at);
  } catch {
    return e.kind === "remove" || e.kind === "chown";
  }
  if (e.kind === "remove") return false;
  const owned = (st.mode & 0o7777) === e.mode && st.uid === e.uid && st.gid === e.gid;
  if (e.kind === "write") return st.isFile() && owned && readText(at) === e.content;
  // A link is never taken for the directory it points to.
  return st.isDirectory() && owned;
}

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/**
 * Runs `fn` on directory `dir` opened without following a link (ENOTDIR if
 * it is one), through its /proc/<pid>/fd path: every name `fn` creates,
 * renames or removes is inside that very directory, even if a user swaps
 * a path component for a link meanwhile (their home and .ssh are theirs).
 * The path is /proc/<pid>, not /proc/self, so visudo (a child) can read it.
 */
function inDir<T>(dir: string, fn: (d: string, fd: number) => T): T {
  const fd = openSync(dir, DIR_FLAGS);
  try {
    return fn(`/proc/${process.pid}/fd/${fd}`, fd);
  } finally {
    closeSync(fd);
  }
}

/** Temp file with owner and mode → fsync → (sudoers: visudo) → rename, all inside one opened directory. */
function writeOwned(e: Extract<AccessEdit, { kind: "write" }>, at: string, root: string): void {
  if (!e.path.startsWith("/home/")) mkdirSync(dirname(at), { recursive: true, mode: 0o755 });
  inDir(dirname(at), (d) =>
    atomicWrite(`${d}/${basename(at)}`, e.content, e.mode, {
      owner: e,
      check: e.sudoers ? (tmp) => checkSudoers(tmp, root) : undefined,
    }),
  );
}

/** `visudo -c -f` on the machine itself (root ""), when it has visudo. */
function checkSudoers(file: string, root: string): void {
  if (root !== "") return;
  const visudo = ["/usr/sbin/visudo", "/usr/bin/visudo"].find((p) => existsSync(p));
  if (!visudo) return;
  const r = runCommand([visudo, "-c", "-q", "-f", file], { maxOutput: 64 * 1024 });
  if (r.code !== 0)
    throw new HeroError(
      "access.sudoers",
      `visudo refused the sudoers file: ${r.stderr.trim() || `exit ${r.code}`}`,
    );
}

/** Owner and mode of a directory opened without following a link (never chmod through a path). */
function ownDir(at: string, mode: number, uid: number, gid: number): void {
  inDir(at, (_d, fd) => {
    fchownSync(fd, uid, gid);
    fchmodSync(fd, mode);
  });
}

/** A real directory with owner and mode; a link or file in its place is removed first. */
function ensureDir(e: Extract<AccessEdit, { kind: "mkdir" }>, at: string): void {
  // /home itself may be missing; a directory inside a user's home must already be there.
  if (!dirname(e.path).startsWith("/home/"))
    mkdirSync(dirname(at), { recursive: true, mode: 0o755 });
  inDir(dirname(at), (d) => {
    const here = `${d}/${basename(at)}`;
    try {
      if (!lstatSync(here).isDirectory()) rmSync(here, { force: true });
    } catch {
      // absent
    }
    try {
      mkdirSync(here, { mode: e.mode });
    } catch (err) {
      if ((err as { code?: string }).code !== "EEXIST") throw err;
    }
    ownDir(here, e.mode, e.uid, e.gid);
  });
}

/**
 * Refuses to act below a user's home through a link: the home and every
 * directory under it on the way to `path` must be real directories (the
 * user owns them and could plant a link to /etc there). A clear early
 * answer; inDir() is what holds against a swap in between.
 */
function linkBelowHome(path: string, root: string): string | null {
  const parts = path.split("/");
  if (parts[1] !== "home") return null;
  for (let i = 3; i <= parts.length; i++) {
    const dir = parts.slice(0, i).join("/");
    try {
      if (lstatSync(`${root}${dir}`).isSymbolicLink()) return dir;
    } catch {
      return null; // absent: created as a real directory by the plan
    }
  }
  return null;
}

function applyEdit(e: AccessEdit, root: string): void {
  const at = `${root}${e.path}`;
  const link =
    e.kind === "mkdir" ? null : linkBelowHome(e.kind === "chown" ? e.path : dirname(e.path), root);
  if (link && e.kind === "write")
    throw new HeroError("access.link", `${link} is a symbolic link; not writing through it`);
  if (link) return; // a removed user's leftovers behind a link: their login is gone anyway
  if (e.kind === "write") writeOwned(e, at, root);
  else if (e.kind === "mkdir") ensureDir(e, at);
  else if (e.kind === "chown") ownDir(at, e.mode, e.uid, e.gid);
  else
    try {
      inDir(dirname(at), (d) => rmSync(`${d}/${basename(at)}`, { force: true }));
    } catch (err) {
      // The directory is gone (nothing to remove) or is a link (not followed).
      if (!["ENOENT", "ENOTDIR", "ELOOP"].includes((err as { code?: string }).code ?? ""))
        throw err;
    }
}

/** Pure-ish: the plan for this run (reads the account files and the record). */
export function accessPlan(m: Manifest, run: Pick<Run, "src" | "paths">): AccessPlan | null {
  const env = run.src.env;
  const access = env ? m.env[env]?.access : undefined;
  if (!env || !access) return null;
  const root = run.paths.root;
  return planAccess(env, access, readAccessRecord(run.paths.stateDir), {
    passwd: readText(`${root}/etc/passwd`),
    group: readText(`${root}/etc/group`),
    shadow: readText(`${root}/etc/shadow`),
  });
}

/**
 * The access step of an update run: plan, apply what differs (nothing with
 * `check`), keep the record, tell the host whether sshd runs. Null when
 * this machine's environment has no access section (the machine is left
 * as it is).
 */
export async function applyAccess(m: Manifest, run: Run): Promise<AccessResult | null> {
  const plan = accessPlan(m, run);
  if (!plan) return null;
  const root = run.paths.root;
  const todo = plan.edits.filter((e) => !inPlace(e, `${root}${e.path}`));
  const result: AccessResult = {
    env: run.src.env as string,
    changed: todo.map((e) => e.path),
    users: plan.summary,
    sshd: plan.sshd,
  };
  if (run.o.check) return result;
  if (todo.length) await run.step("access");
  const revoked = revokedUsers(plan, todo, root);
  for (const e of todo) applyEdit(e, root);
  mkdirSync(run.paths.stateDir, { recursive: true, mode: 0o700 });
  atomicWrite(join(run.paths.stateDir, RECORD), `${JSON.stringify(plan.record, null, 2)}\n`, 0o600);
  if (todo.length)
    run.hooks.log(
      `access (${result.env}): ${[...plan.summary, ...todo.map((e) => `${e.kind} ${e.path}`)].join("; ")}`,
    );
  const sshdChanged = todo.some((e) => e.path.startsWith("/etc/ssh/"));
  await run.hooks.sshd?.(plan.sshd, sshdChanged);
  if (revoked.length) {
    result.ended = revoked.map((u) => u.name);
    await run.hooks.endSessions?.(revoked);
  }
  return result;
}

/**
 * Whose open sessions must end once the edits are written: users no longer
 * listed, and users an authorized_keys rewrite takes a key from (a key
 * cannot be tied to a session, so all of that user's sessions end; the
 * remaining keys log in again). Read before the writes.
 */
function revokedUsers(
  plan: AccessPlan,
  todo: AccessEdit[],
  root: string,
): { name: string; uid: number }[] {
  const out = [...plan.removed];
  for (const e of todo) {
    const m = /^\/home\/([^/]+)\/\.ssh\/authorized_keys$/.exec(e.path);
    if (e.kind !== "write" || !m) continue;
    if (lostKeys(readText(`${root}${e.path}`), e.content).length)
      out.push({ name: m[1] as string, uid: e.uid });
  }
  return out;
}
