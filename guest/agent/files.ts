/**
 * File operations of the guest agent: atomic writes (temp file in the same
 * directory, fsync, rename, fsync of the directory) with a size limit
 * enforced while the body streams in, reads with mode/mtime/owner headers,
 * symlinks, and stat. Errors are agentError (lib/agent-protocol.ts): an
 * HTTP status and a clear message; nothing here logs file contents.
 */
import type { Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import {
  agentError,
  formatMode,
  H_GID,
  H_MODE,
  H_MTIME,
  H_TARGET,
  H_TYPE,
  H_UID,
  type PutResult,
  type StatResult,
} from "../../lib/agent-protocol.ts";
import { type HeroError, isHeroError } from "../../lib/errors.ts";
import { randomHex } from "../../lib/random.ts";

/** Maps a filesystem error to an agentError (status by errno). */
export function fsError(what: string, e: unknown): HeroError {
  if (isHeroError(e, "agent")) return e;
  const code = (e as { code?: string })?.code ?? "";
  const msg = (e as Error)?.message ?? String(e);
  const status =
    code === "ENOENT" || code === "ENOTDIR"
      ? 404
      : code === "EACCES" || code === "EPERM"
        ? 403
        : code === "EISDIR" || code === "EEXIST" || code === "ENOTEMPTY" || code === "EROFS"
          ? 409
          : code === "ENOSPC" || code === "EDQUOT"
            ? 507
            : code === "ENAMETOOLONG" || code === "ELOOP" || code === "EINVAL"
              ? 400
              : 500;
  return agentError(status, `${what}: ${code ? `${code} ` : ""}${msg.replace(/^\w+: /, "")}`);
}

/** Options of a file write. */
export interface PutOptions {
  mode: number | null;
  mtime: number | null;
  uid: number | null;
  gid: number | null;
  /** Create missing parent directories (0755). */
  mkdir: boolean;
  /** Largest body accepted, bytes. */
  maxSize: number;
  /** Content-Length the client declared, if any (checked before reading). */
  declaredSize: number | null;
}

async function ensureParent(path: string, mkdir: boolean): Promise<void> {
  const dir = dirname(path);
  if (mkdir) {
    try {
      await fsp.mkdir(dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw fsError(`cannot create ${dir}`, e);
    }
    return;
  }
  let st: Stats;
  try {
    st = await fsp.stat(dir);
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT")
      throw agentError(404, `parent directory ${dir} does not exist (add ?mkdir=1 to create it)`);
    throw fsError(`cannot stat ${dir}`, e);
  }
  if (!st.isDirectory()) throw agentError(409, `${dir} is not a directory`);
}

function tempName(path: string): string {
  return join(dirname(path), `.${basename(path)}.hero-agent-${randomHex(6)}`);
}

async function fsyncDir(dir: string): Promise<void> {
  try {
    const h = await fsp.open(dir, "r");
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  } catch {
    // some filesystems refuse fsync on directories; the rename is still atomic
  }
}

/**
 * Writes `body` to `path` atomically. Mode defaults to the existing file's
 * (else 0644), owner to the existing file's (else the agent's).
 */
export async function putFile(
  path: string,
  body: ReadableStream<Uint8Array> | null,
  o: PutOptions,
): Promise<PutResult> {
  if (o.declaredSize !== null && o.declaredSize > o.maxSize)
    throw agentError(413, `file too large: ${o.declaredSize} bytes, the limit is ${o.maxSize}`);
  await ensureParent(path, o.mkdir);
  let existing: Stats | null = null;
  try {
    existing = await fsp.lstat(path);
  } catch {
    // a new file
  }
  if (existing?.isDirectory()) throw agentError(409, `${path} is a directory`);
  const mode = o.mode ?? (existing?.isFile() ? existing.mode & 0o7777 : 0o644);
  const tmp = tempName(path);
  let h: fsp.FileHandle;
  try {
    h = await fsp.open(tmp, "wx", 0o600);
  } catch (e) {
    throw fsError(`cannot create a temporary file in ${dirname(path)}`, e);
  }
  let size = 0;
  let ok = false;
  try {
    if (body) {
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          size += value.byteLength;
          if (size > o.maxSize)
            throw agentError(413, `file too large: more than ${o.maxSize} bytes`);
          let off = 0;
          while (off < value.byteLength) {
            const { bytesWritten } = await h.write(value, off, value.byteLength - off);
            off += bytesWritten;
          }
        }
      } finally {
        reader.cancel().catch(() => {});
      }
    }
    await h.sync();
    await h.close();
    const uid = o.uid ?? (existing ? existing.uid : null);
    const gid = o.gid ?? (existing ? existing.gid : null);
    if (uid !== null || gid !== null) await fsp.chown(tmp, uid ?? -1, gid ?? -1);
    // chmod after chown: chown clears set-id bits.
    await fsp.chmod(tmp, mode);
    if (o.mtime !== null) await fsp.utimes(tmp, o.mtime, o.mtime);
    await fsp.rename(tmp, path);
    ok = true;
  } catch (e) {
    throw fsError(`cannot write ${path}`, e);
  } finally {
    if (!ok) {
      await h.close().catch(() => {});
      await fsp.unlink(tmp).catch(() => {});
    }
  }
  await fsyncDir(dirname(path));
  const st = await fsp.stat(path);
  return { path, size, mode: formatMode(st.mode), mtime: st.mtimeMs / 1000 };
}

/** Creates (or atomically replaces) a symlink at `path` pointing to `target`. */
export async function putSymlink(
  path: string,
  target: string,
  o: Pick<PutOptions, "mtime" | "uid" | "gid" | "mkdir">,
): Promise<StatResult> {
  if (target === "" || target.includes("\0"))
    throw agentError(400, "symlink target must be non-empty, without NUL");
  await ensureParent(path, o.mkdir);
  try {
    const st = await fsp.lstat(path);
    if (st.isDirectory()) throw agentError(409, `${path} is a directory`);
  } catch (e) {
    if (isHeroError(e, "agent")) throw e;
  }
  const tmp = tempName(path);
  try {
    await fsp.symlink(target, tmp);
    try {
      if (o.uid !== null || o.gid !== null) await fsp.lchown(tmp, o.uid ?? -1, o.gid ?? -1);
      if (o.mtime !== null) await fsp.lutimes(tmp, o.mtime, o.mtime);
      await fsp.rename(tmp, path);
    } catch (e) {
      await fsp.unlink(tmp).catch(() => {});
      throw e;
    }
  } catch (e) {
    throw fsError(`cannot create symlink ${path}`, e);
  }
  await fsyncDir(dirname(path));
  return statPath(path, false);
}

function typeOf(st: Stats): StatResult["type"] {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "directory";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isSocket()) return "socket";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  return "unknown";
}

/** stat (follow) or lstat (the default) of `path`. */
export async function statPath(path: string, follow: boolean): Promise<StatResult> {
  let st: Stats;
  try {
    st = follow ? await fsp.stat(path) : await fsp.lstat(path);
  } catch (e) {
    throw fsError(`cannot stat ${path}`, e);
  }
  const out: StatResult = {
    type: typeOf(st),
    size: st.size,
    mode: formatMode(st.mode),
    mtime: st.mtimeMs / 1000,
    uid: st.uid,
    gid: st.gid,
  };
  if (st.isSymbolicLink()) {
    try {
      out.target = await fsp.readlink(path);
    } catch {
      // raced with a removal
    }
  }
  return out;
}

/**
 * GET files: a Response with the bytes (or, for a symlink with nofollow, its
 * target). `head`: the same headers and the file's Content-Length, no body
 * (said explicitly: Hono answers HEAD by dropping a GET response's body, and
 * with it the length Bun would have taken from the file).
 */
export async function getFile(path: string, nofollow: boolean, head = false): Promise<Response> {
  const st = await statPath(path, !nofollow);
  const headers: Record<string, string> = {
    [H_MODE]: st.mode,
    [H_MTIME]: String(st.mtime),
    [H_UID]: String(st.uid),
    [H_GID]: String(st.gid),
    [H_TYPE]: st.type,
  };
  if (st.type === "symlink") {
    headers[H_TARGET] = encodeURIComponent(st.target ?? "");
    return new Response(null, { status: 200, headers });
  }
  if (st.type === "directory") throw agentError(409, `${path} is a directory`);
  if (st.type !== "file") throw agentError(409, `${path} is a ${st.type}, not a regular file`);
  // Open now so a permission error is a clean 403 rather than a broken stream.
  try {
    const h = await fsp.open(path, "r");
    await h.close();
  } catch (e) {
    throw fsError(`cannot read ${path}`, e);
  }
  headers["content-type"] = "application/octet-stream";
  if (head)
    return new Response(null, {
      status: 200,
      headers: { ...headers, "content-length": String(st.size) },
    });
  return new Response(Bun.file(path), { status: 200, headers });
}
