/**
 * Replacing a file or a symlink so that a reader, a kill -9 or a power cut
 * sees the old one or the complete new one, never a mix: the new content is
 * written under a temporary name in the same directory (same filesystem, so
 * the rename is atomic), the file is fsynced (its bytes are on disk before
 * its name is), renamed over the target, and the directory is fsynced (the
 * rename itself survives a power cut). On any failure before the rename the
 * temporary file is removed and the old file is untouched.
 *
 * The one place this sequence is written; the update engine, the injector
 * and the guest runtime call it.
 */
import {
  chmodSync,
  closeSync,
  fchmodSync,
  fchownSync,
  fsyncSync,
  openSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname } from "node:path";
import { randomHex } from "./random.ts";

/**
 * A fresh temporary name beside `path`: `<path>.tmp-<pid>-<random>`. Random,
 * so that two writers never share one and nobody can plant a link there in
 * advance; `.tmp-` marks it for cleanups that skip work in progress.
 */
export function tempPathFor(path: string): string {
  return `${path}.tmp-${process.pid}-${randomHex(6)}`;
}

/** fsyncs a file or a directory by path (a directory: the names in it, e.g. after a rename). */
export function fsyncPath(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Moves a complete file `from` over `to` for good: fsync the file, rename,
 * fsync the directory. `from` must be on the same filesystem (the same
 * directory, in practice); if the rename fails, `from` stays where it was
 * (a download keeps its .part for a resume).
 */
export function renameDurable(from: string, to: string): void {
  fsyncPath(from);
  renameSync(from, to);
  fsyncPath(dirname(to));
}

/** What {@link replaceFile} does after the fill. */
export interface ReplaceOptions {
  /**
   * The file's final mode, set after the fsync: a mode without read
   * permission (a copy of a 0o000 file) would stop the fsync's open.
   */
  mode?: number;
}

/** fsync the temporary file, give it its mode, rename it over `path`, fsync the directory. */
function commit(tmp: string, path: string, o: ReplaceOptions): void {
  fsyncPath(tmp);
  if (o.mode !== undefined) chmodSync(tmp, o.mode);
  renameSync(tmp, path);
  fsyncPath(dirname(path));
}

/**
 * Replaces `path` with what `fill(tmp)` writes to a temporary path beside
 * it (fill may copy, append, set times…), then fsyncs and renames it in. If
 * fill or the rename throws, the temporary file is removed and the error
 * rethrown; `path` is unchanged.
 */
export function replaceFile(
  path: string,
  fill: (tmp: string) => void,
  o: ReplaceOptions = {},
): void {
  const tmp = tempPathFor(path);
  try {
    fill(tmp);
    commit(tmp, path, o);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** {@link replaceFile} with an asynchronous fill (a streamed body). */
export async function replaceFileAsync(
  path: string,
  fill: (tmp: string) => Promise<void>,
  o: ReplaceOptions = {},
): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await fill(tmp);
    commit(tmp, path, o);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** What {@link atomicWrite} does besides the write. */
export interface WriteOptions {
  /**
   * Owner of the new file; with it, `mode` is set exactly on the descriptor
   * after the chown (no umask, set-id bits kept), the file being 0600 until then.
   */
  owner?: { uid: number; gid: number };
  /** Checks the complete temporary file before the rename (throw: nothing is replaced). */
  check?: (tmp: string) => void;
}

/**
 * Writes `data` to `path` atomically and durably (see the module comment).
 * The temporary file is created exclusively with `mode`, cut by the umask
 * like any new file; the default is writeFileSync's (0o666 before the umask).
 */
export function atomicWrite(
  path: string,
  data: string | Uint8Array,
  mode = 0o666,
  o: WriteOptions = {},
): void {
  const tmp = tempPathFor(path);
  try {
    // fsynced through its own descriptor: a mode without read permission
    // (a manifest may name 0o111) could not be reopened to fsync it.
    const fd = openSync(tmp, "wx", o.owner ? 0o600 : mode);
    try {
      writeFileSync(fd, data);
      if (o.owner) {
        fchownSync(fd, o.owner.uid, o.owner.gid);
        fchmodSync(fd, mode);
      }
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    o.check?.(tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncPath(dirname(path));
}

/**
 * Points the symlink `path` at `target` with one rename: there is never a
 * moment without a link, and a reader resolves the old target or the new
 * one. The directory is fsynced so the switch survives a power cut.
 */
export function switchLink(path: string, target: string): void {
  const tmp = tempPathFor(path);
  try {
    symlinkSync(target, tmp);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
  fsyncPath(dirname(path));
}
