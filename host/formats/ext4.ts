/**
 * An ext4 image file, edited without root and without mounting it, through
 * e2fsprogs' debugfs.
 *
 * debugfs is a command language: `-f` reads one command per line and splits
 * arguments at blanks; its quotes ("a b", "" for a quote) cannot carry a
 * newline, and a backslash is not an escape. Bytes from the image (link
 * targets, names) or from a manifest must therefore never reach a command
 * line as they are: links are resolved in TypeScript
 * (host/root-path.ts), and every argument given to debugfs is a path
 * the injector constructed from names in a strict set (letters, digits and
 * `. _ + @ , : = ~ -`), checked once more where the command is built
 * (`debugfsArg`). A link or plan path outside that set is refused with an
 * HeroError naming it; the host and the image are left as they were.
 * Staged files are named by number and read relative to debugfs's working
 * directory, so no host path appears in a script either.
 *
 * debugfs exits 0 even when a command fails, so every run's output is
 * checked for errors, every written entry is read back and compared, and
 * `e2fsck -fn` must pass. All writing happens on a copy next to the image,
 * renamed over the original only when verified: a full image or a failed
 * command leaves the original byte for byte as it was. An image another
 * process has open (a running VM) is refused.
 */

import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { renameDurable } from "../../lib/atomic-file.ts";
import { HeroError, isHeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { runCommand } from "../../sys/command.ts";
import { type PlanEntry, sha256 } from "../plan.ts";
import { resolveParent, show } from "../root-path.ts";
import { type ApplyResult, checkReadSize, type Existing, type RootfsFormat } from "./types.ts";
import { type Entry, planWrites, type WriteOp } from "./write-ops.ts";

/** Most bytes `debugfs cat` may print: a file read back (hero-init is ~110 MB) fits, more is refused. */
const MAX_CAT = 1024 * 1024 * 1024;

/** Pids of other processes that have `file` open (read from /proc/<pid>/fd). */
export function holders(file: string): number[] {
  const real = resolve(file);
  const out: number[] = [];
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue;
    let fds: string[] = [];
    try {
      fds = readdirSync(`/proc/${p}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${p}/fd/${fd}`) === real) {
          out.push(Number(p));
          break;
        }
      } catch {
        // raced with close
      }
    }
  }
  return out;
}

/** The characters a name given to debugfs may have: none of them means anything to its parser. */
const NAME = /^[A-Za-z0-9._+@,:=~-]+$/;
const ALLOWED = "only letters, digits and . _ + @ , : = ~ - can be";

/** Pure: why debugfs cannot be given `name` safely, or null (the resolver's checkName). */
export function debugfsName(name: string): string | null {
  return NAME.test(name) && name !== "." && name !== ".."
    ? null
    : `characters that cannot be passed to debugfs safely (${ALLOWED})`;
}

/**
 * Pure: `s` as one debugfs argument, or an input error naming `what`. A path
 * (or a link target) of names in the strict set, joined by single slashes;
 * never starting with "-" (an option), never empty, never quoted.
 */
export function debugfsArg(s: string, what: string): string {
  const names = (s.startsWith("/") ? s.slice(1) : s).split("/");
  if (s !== "/" && (s.startsWith("-") || !names.every((n) => NAME.test(n))))
    throw new HeroError(
      "ext4",
      `${what} ${show(s)} cannot be passed to debugfs safely (${ALLOWED})`,
    );
  return s;
}

/** Facts read from a debugfs `stat`. */
export interface StatFacts {
  type: "dir" | "file" | "symlink" | "other";
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** A fast symlink's target, byte for byte; null for a slow one (read it with `cat`). */
  fastTarget: string | null;
}

/** Pure: debugfs `stat` output → the facts we need; null if it names no inode. */
export function parseStat(out: Uint8Array | string): StatFacts | null {
  const bytes = typeof out === "string" ? new TextEncoder().encode(out) : out;
  const text = new TextDecoder("latin1").decode(bytes);
  const type = /^Inode: \d+\s+Type: (\w+)/m.exec(text)?.[1];
  if (!type) return null;
  const mode = Number.parseInt(/Mode:\s+([0-7]+)/.exec(text)?.[1] ?? "0", 8) & 0o7777;
  const uid = Number(/^User:\s+(\d+)/m.exec(text)?.[1] ?? 0);
  const gid = Number(/Group:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const size = Number(/^User:.*?\sSize: (\d+)/m.exec(text)?.[1] ?? 0);
  let fastTarget: string | null = null;
  const marker = text.indexOf('Fast link dest: "');
  if (type === "symlink" && marker >= 0) {
    // Printed raw (newlines, quotes and all): take exactly `size` bytes.
    const at = marker + 'Fast link dest: "'.length;
    fastTarget = new TextDecoder().decode(bytes.subarray(at, at + size));
  }
  const t =
    type === "directory"
      ? "dir"
      : type === "regular"
        ? "file"
        : type === "symlink"
          ? "symlink"
          : "other";
  return { type: t, mode, uid, gid, size, fastTarget };
}

/** Pure: debugfs output lines that report a failure (it exits 0 regardless). */
export function debugfsErrors(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((l) => l.trim() && !/^debugfs [\d.]+ \(/.test(l) && !/^Allocated inode: \d+$/.test(l));
}

/** Pure: refuses a plan whose paths or link targets debugfs cannot be given, naming the entry. */
export function checkPlanForDebugfs(plan: readonly PlanEntry[]): void {
  for (const e of plan) {
    debugfsArg(e.path, "path");
    if (e.kind === "symlink") debugfsArg(e.target, `link target of ${show(e.path)}:`);
  }
}

/**
 * Pure: the debugfs script for `ops`. Files to write are returned in order;
 * the script reads the i-th from the file named `i` in debugfs's working
 * directory. Every argument passes debugfsArg.
 */
export function debugfsScript(
  ops: readonly WriteOp[],
  mtime: number,
): { lines: string[]; files: Uint8Array[] } {
  const lines: string[] = [];
  const files: Uint8Array[] = [];
  const times = (p: string) =>
    ["mtime", "ctime", "atime", "crtime"].map((f) => `sif ${p} ${f} ${mtime}`);
  const owner = (p: string, uid: number, gid: number) => [
    `sif ${p} uid ${uid}`,
    `sif ${p} gid ${gid}`,
  ];
  for (const op of ops) {
    const p = debugfsArg(op.path, `path (for ${show(op.entry)})`);
    if (op.op === "mkdir") {
      lines.push(`mkdir ${p}`, `sif ${p} mode 0${(0o040000 | op.mode).toString(8)}`);
      lines.push(...owner(p, op.uid, op.gid), ...times(p));
    } else if (op.op === "chmod") {
      lines.push(`sif ${p} mode 0${(0o040000 | op.mode).toString(8)}`);
      lines.push(...owner(p, op.uid, op.gid), `sif ${p} ctime ${mtime}`);
    } else if (op.op === "aside") {
      // debugfs ln/unlink do not touch link counts: together they are a rename.
      lines.push(`ln ${p} ${debugfsArg(op.to, "path")}`, `unlink ${p}`);
    } else {
      if (op.replaces) lines.push(`rm ${p}`);
      if (op.op === "symlink") {
        lines.push(`symlink ${p} ${debugfsArg(op.target, `link target of ${show(op.entry)}:`)}`);
      } else {
        lines.push(
          `write ${files.length} ${p}`,
          `sif ${p} mode 0${(0o100000 | op.mode).toString(8)}`,
        );
        files.push(op.data);
      }
      lines.push(...owner(p, op.uid, op.gid), ...times(p));
    }
  }
  return { lines, files };
}

/** Opens an ext4 image file. */
export function ext4Format(image: string): RootfsFormat {
  const dec = new TextDecoder();
  // A canonical path of `img` (its parents real directories), refused unless in the
  // strict set; the image absolute, so one named like an option stays an image.
  const stat = (img: string, path: string): StatFacts | null =>
    parseStat(
      runCommand(["debugfs", "-R", `stat ${debugfsArg(path, "path")}`, resolve(img)]).stdout,
    );
  const cat = (img: string, path: string) =>
    runCommand(["debugfs", "-R", `cat ${debugfsArg(path, "path")}`, resolve(img)], {
      maxOutput: MAX_CAT,
    }).stdout;
  const entryIn = (img: string, path: string): Entry | null => {
    const s = stat(img, path);
    if (!s) return null;
    if (s.type === "dir") return { type: "dir", mode: s.mode, uid: s.uid, gid: s.gid };
    if (s.type === "file")
      return {
        type: "file",
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        sha256: () => sha256(cat(img, path)),
      };
    if (s.type === "symlink") {
      if (s.fastTarget !== null) return { type: "symlink", target: s.fastTarget };
      const t = cat(img, path);
      if (t.length !== s.size)
        throw new HeroError("ext4", `cannot read the symlink ${show(path)} in ${image}`, {
          file: image,
        });
      return { type: "symlink", target: dec.decode(t) };
    }
    return { type: "other" };
  };
  // The image does not change while it is read: every path is asked once.
  const cache = new Map<string, Entry | null>();
  const cached = (p: string) => {
    if (!cache.has(p)) cache.set(p, entryIn(image, p));
    return cache.get(p) ?? null;
  };

  return {
    kind: "ext4",
    exists: async () => existsSync(image),
    async lookup(path) {
      let e: Entry | null;
      let at: string;
      try {
        at = resolveParent(path, cached, { checkName: debugfsName }).path;
        e = cached(at);
      } catch (err) {
        if (isHeroError(err, "input")) return null; // a dangling or unusable link: nothing there
        throw err;
      }
      if (e?.type !== "file") return e;
      const { sha256: _, ...rest } = e;
      return {
        ...rest,
        data: async (maxBytes) => {
          if (maxBytes !== undefined) checkReadSize(path, stat(image, at)?.size ?? 0, maxBytes);
          return cat(image, at);
        },
      } satisfies Existing;
    },
    async apply(plan: readonly PlanEntry[], { mtime, progress }): Promise<ApplyResult> {
      const held = holders(image);
      if (held.length)
        throw new HeroError(
          "busy",
          `${image} is open in process ${held.join(", ")} (a running VM?); stop it first`,
          { file: image },
        );
      // Everything is resolved, checked and planned before the image is copied.
      checkPlanForDebugfs(plan);
      const ops = planWrites(plan, cached, { owners: true, checkName: debugfsName });
      const { lines, files } = debugfsScript(ops, mtime);
      if (!ops.length) return { changed: 0, notes: [] };
      const notes = ops.some((o) => o.op === "aside")
        ? [`${LAYOUT.sbinInit} kept as ${LAYOUT.sbinInitAside}`]
        : [];
      const work = join(dirname(resolve(image)), `.${image.split("/").at(-1)}.hero-tmp`);
      const stage = mkdtempSync(join(tmpdir(), "hero-ext4-"));
      try {
        progress?.(`copying ${image} (${statSync(image).size} bytes)`);
        copyFileSync(image, work);
        for (const [i, data] of files.entries()) writeFileSync(join(stage, String(i)), data);
        writeFileSync(join(stage, "script"), `${lines.join("\n")}\n`);
        progress?.(`debugfs: ${lines.length} commands`);
        // E2FSPROGS_FAKE_TIME pins the superblock's write time: same inputs, same bytes.
        const r = runCommand(["debugfs", "-w", "-f", "script", work], {
          cwd: stage,
          env: { E2FSPROGS_FAKE_TIME: String(mtime) },
        });
        const errs = debugfsErrors(r.stderr);
        if (r.code !== 0 || errs.length)
          throw new HeroError(
            "ext4",
            `debugfs failed on ${image}: ${errs.slice(0, 5).join("; ") || `exit ${r.code ?? r.signal}`}`,
            { file: image },
          );
        // Read everything back from the copy.
        for (const op of ops) {
          const got = entryIn(work, op.op === "aside" ? op.to : op.path);
          const ok =
            got !== null &&
            (op.op === "aside"
              ? true
              : op.op === "mkdir" || op.op === "chmod"
                ? got.type === "dir" &&
                  got.mode === op.mode &&
                  got.uid === op.uid &&
                  got.gid === op.gid
                : op.op === "symlink"
                  ? got.type === "symlink" && got.target === op.target
                  : got.type === "file" && got.mode === op.mode && got.sha256() === op.sha256);
          if (!ok)
            throw new HeroError(
              "ext4",
              `read-back of ${op.entry} in ${image} does not match what was written`,
              { file: image },
            );
        }
        const fsck = runCommand(["e2fsck", "-fn", work]);
        if (fsck.code !== 0)
          throw new HeroError(
            "ext4",
            `e2fsck -fn reports problems after writing: ${dec.decode(fsck.stdout).split("\n").slice(0, 5).join("; ")}`,
            { file: image },
          );
        renameDurable(work, image);
        cache.clear();
        return { changed: ops.filter((o) => o.op !== "aside").length, notes };
      } finally {
        rmSync(work, { force: true });
        rmSync(stage, { recursive: true, force: true });
      }
    },
  };
}
