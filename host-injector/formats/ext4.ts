/**
 * An ext4 image file, edited without root and without mounting it, through
 * e2fsprogs' debugfs. debugfs exits 0 even when a command fails, so every
 * run's output is checked for errors, every written file is read back and
 * compared, and `e2fsck -fn` must pass. All of it happens on a copy next to
 * the image, renamed over the original only when verified: a full image or
 * a failed command leaves the original byte for byte as it was. An image
 * another process has open (a running VM) is refused.
 */
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { InputError } from "../../lib/errors.ts";
import { LAYOUT, type PlanEntry } from "../plan.ts";
import type { ApplyResult, Existing, RootfsFormat } from "./types.ts";

function run(
  cmd: string[],
  input?: string,
  env?: Record<string, string>,
): { code: number; out: Uint8Array; err: string } {
  const p = Bun.spawnSync(cmd, {
    env: env ? { ...process.env, ...env } : undefined,
    stdin: input === undefined ? "ignore" : new TextEncoder().encode(input),
    stdout: "pipe",
    stderr: "pipe",
  });
  return { code: p.exitCode ?? -1, out: new Uint8Array(p.stdout), err: p.stderr.toString() };
}

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

/** Pure: debugfs `stat` output → the facts we need. */
export function parseStat(text: string): Existing | null {
  const type = /Type: (\w+)/.exec(text)?.[1];
  const mode = Number.parseInt(/Mode:\s+([0-7]+)/.exec(text)?.[1] ?? "0", 8);
  const uid = Number(/User:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const gid = Number(/Group:\s+(\d+)/.exec(text)?.[1] ?? 0);
  if (type === "directory") return { type: "dir", mode: mode & 0o7777, uid, gid };
  if (type === "symlink") {
    const fast = /Fast link dest: "(.*)"/.exec(text)?.[1];
    return { type: "symlink", target: fast ?? "" };
  }
  if (type === "regular")
    return { type: "file", mode: mode & 0o7777, uid, gid, data: async () => new Uint8Array(0) };
  return type ? { type: "other" } : null;
}

/** Pure: debugfs output lines that report a failure (it exits 0 regardless). */
export function debugfsErrors(stderr: string): string[] {
  return stderr
    .split("\n")
    .filter((l) => l.trim() && !/^debugfs [\d.]+ \(/.test(l) && !/^Allocated inode: \d+$/.test(l));
}

function q(s: string): string {
  if (/[\s"\\]/.test(s)) return `"${s.replace(/(["\\])/g, "\\$1")}"`;
  return s;
}

/** Opens an ext4 image file. */
export function ext4Format(image: string): RootfsFormat {
  const debugfs = (img: string, request: string) => run(["debugfs", "-R", request, img]);
  const rawLookup = async (img: string, path: string): Promise<Existing | null> => {
    const r = debugfs(img, `stat ${q(path)}`);
    const e = parseStat(new TextDecoder().decode(r.out));
    if (!e) return null;
    if (e.type === "symlink" && !e.target) {
      const target = new TextDecoder().decode(debugfs(img, `cat ${q(path)}`).out);
      return { type: "symlink", target };
    }
    if (e.type === "file") return { ...e, data: async () => debugfs(img, `cat ${q(path)}`).out };
    return e;
  };
  /**
   * The path with symlinks in its parent components resolved inside the
   * image (usr-merge: /sbin/init → /usr/sbin/init): debugfs does not follow
   * them when creating entries.
   */
  const canonical = async (img: string, path: string): Promise<string> => {
    let todo = path.split("/").filter(Boolean);
    let cur: string[] = [];
    for (let hops = 0; todo.length > 1 && hops < 40; ) {
      const part = todo.shift() as string;
      if (part === "..") {
        cur.pop();
        continue;
      }
      const e = await rawLookup(img, `/${[...cur, part].join("/")}`);
      if (e?.type === "symlink") {
        hops++;
        const t = e.target.split("/").filter(Boolean);
        if (e.target.startsWith("/")) cur = [];
        todo = [...t, ...todo];
        continue;
      }
      cur.push(part);
    }
    return `/${[...cur, ...todo].join("/")}`;
  };
  const lookupIn = async (img: string, path: string) => rawLookup(img, await canonical(img, path));

  return {
    kind: "ext4",
    exists: async () => existsSync(image),
    lookup: (p) => lookupIn(image, p),
    async apply(plan: readonly PlanEntry[], { mtime, progress }): Promise<ApplyResult> {
      const held = holders(image);
      if (held.length)
        throw new InputError(
          "busy",
          `${image} is open in process ${held.join(", ")} (a running VM?); stop it first`,
          { file: image },
        );
      const work = join(dirname(resolve(image)), `.${image.split("/").at(-1)}.hero-tmp`);
      const stage = mkdtempSync(join(tmpdir(), "hero-ext4-"));
      const notes: string[] = [];
      try {
        progress?.(`copying ${image} (${statSync(image).size} bytes)`);
        copyFileSync(image, work);
        const cmds: string[] = [];
        let n = 0;
        const skip = new Set<string>();
        for (const e of plan) {
          const P = await canonical(work, e.path);
          const cur = await lookupIn(work, e.path);
          if (
            e.kind === "dir" &&
            cur &&
            (cur.type === "symlink" || (cur.type === "dir" && !e.own))
          ) {
            // An existing directory (or a symlink to one, usr-merge) is left as it is.
            if (cur.type === "dir" || (await lookupIn(work, `${e.path}/.`))?.type === "dir") {
              skip.add(e.path);
              continue;
            }
          }
          if (
            e.path === LAYOUT.sbinInit &&
            cur &&
            !(cur.type === "symlink" && cur.target === (e.kind === "symlink" ? e.target : ""))
          ) {
            const asideExists = await lookupIn(work, LAYOUT.sbinInitAside);
            if (!asideExists && !(cur.type === "symlink" && cur.target.includes("/hero/"))) {
              // debugfs ln/unlink do not touch link counts: together they are a rename.
              cmds.push(
                `ln ${q(P)} ${q(await canonical(work, LAYOUT.sbinInitAside))}`,
                `unlink ${q(P)}`,
              );
              notes.push(`${LAYOUT.sbinInit} kept as ${LAYOUT.sbinInitAside}`);
            } else cmds.push(`rm ${q(P)}`);
          } else if (cur && e.kind !== "dir") {
            if (cur.type === "dir")
              throw new InputError(
                "path",
                `${e.path} is a directory in the image; refusing to replace it`,
              );
            cmds.push(`rm ${q(P)}`);
          }
          if (e.kind === "dir") {
            if (!cur) cmds.push(`mkdir ${q(P)}`);
            else if (cur.type !== "dir")
              throw new InputError("path", `${e.path} exists in the image and is not a directory`);
            cmds.push(`sif ${q(P)} mode 0${(0o040000 | e.mode).toString(8)}`);
          } else if (e.kind === "symlink") {
            cmds.push(`symlink ${q(P)} ${q(e.target)}`);
          } else {
            const src = join(stage, String(n++));
            writeFileSync(src, e.data);
            cmds.push(
              `write ${q(src)} ${q(P)}`,
              `sif ${q(P)} mode 0${(0o100000 | e.mode).toString(8)}`,
            );
          }
          cmds.push(`sif ${q(P)} uid ${e.uid}`, `sif ${q(P)} gid ${e.gid}`);
          for (const f of ["mtime", "ctime", "atime", "crtime"])
            cmds.push(`sif ${q(P)} ${f} ${mtime}`);
        }
        const script = join(stage, "script");
        writeFileSync(script, `${cmds.join("\n")}\n`);
        progress?.(`debugfs: ${cmds.length} commands`);
        // E2FSPROGS_FAKE_TIME pins the superblock's write time: same inputs, same bytes.
        const r = run(["debugfs", "-w", "-f", script, work], undefined, {
          E2FSPROGS_FAKE_TIME: String(mtime),
        });
        const errs = debugfsErrors(r.err);
        if (r.code !== 0 || errs.length)
          throw new InputError(
            "ext4",
            `debugfs failed on ${image}: ${errs.slice(0, 5).join("; ") || `exit ${r.code}`}`,
            { file: image },
          );
        // Read everything back.
        for (const e of plan) {
          if (skip.has(e.path)) continue;
          const got = await lookupIn(work, e.path);
          const ok =
            got !== null &&
            (e.kind === "dir"
              ? got.type === "dir" && got.mode === e.mode
              : e.kind === "symlink"
                ? got.type === "symlink" && got.target === e.target
                : got.type === "file" &&
                  got.mode === e.mode &&
                  createHash("sha256")
                    .update(await got.data())
                    .digest("hex") === e.sha256);
          if (!ok)
            throw new InputError(
              "ext4",
              `read-back of ${e.path} in ${image} does not match what was written`,
              { file: image },
            );
        }
        const fsck = run(["e2fsck", "-fn", work]);
        if (fsck.code !== 0)
          throw new InputError(
            "ext4",
            `e2fsck -fn reports problems after writing: ${new TextDecoder().decode(fsck.out).split("\n").slice(0, 5).join("; ")}`,
            { file: image },
          );
        renameSync(work, image);
        return { changed: plan.length, notes };
      } finally {
        rmSync(work, { force: true });
        rmSync(stage, { recursive: true, force: true });
      }
    },
  };
}
