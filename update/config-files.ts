/**
 * Config files from the signed manifest (lib/config-files.ts), a step of
 * every update run: the same trust (only a verified manifest names them),
 * the same downloads (capped, sha256-checked: download.ts), the same
 * discipline as binaries: everything fetched first, then each file
 * switched by rename (temp file → owner, mode → fsync → rename, so a
 * service reads the old file or the new one), then the affected services
 * restarted and health-checked; unhealthy → the previous files are put
 * back and the services restarted again.
 *
 * A kill between two files leaves each file whole, old or new; the next
 * run's diff finishes the job.
 */
import { lstatSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { atomicWrite } from "../lib/atomic-file.ts";
import {
  type ConfigFile,
  diffFiles,
  type FileChange,
  type FileFacts,
  fileServices,
  idOf,
  sectionFiles,
  wantedSha256,
} from "../lib/config-files.ts";
import { HeroError, isHeroError } from "../lib/errors.ts";
import type { Manifest } from "../lib/manifest.ts";
import { applyAccess, readText } from "./access.ts";
import { download } from "./download.ts";
import type { DownloadStats } from "./request.ts";
import type { Run } from "./types.ts";

/** Most bytes of an existing file hashed for the diff (larger: always rewritten). */
const MAX_HASH = 64 * 1024 * 1024;

function facts(at: string): FileFacts | null {
  try {
    const st = lstatSync(at);
    // A link or anything but a file is replaced, never followed.
    if (!st.isFile()) return { sha256: null, mode: 0, uid: -1, gid: -1 };
    const sha256 =
      st.size <= MAX_HASH
        ? new Bun.CryptoHasher("sha256").update(readFileSync(at)).digest("hex")
        : null;
    return { sha256, mode: st.mode, uid: st.uid, gid: st.gid };
  } catch {
    return null;
  }
}

function writeFile(at: string, data: Uint8Array, mode: number, uid: number, gid: number): void {
  mkdirSync(dirname(at), { recursive: true, mode: 0o755 });
  atomicWrite(at, data, mode, { owner: { uid, gid } });
}

/** The bytes of one file: inline, or downloaded (once) into the state dir by sha256. */
async function contentOf(f: ConfigFile, run: Run): Promise<Uint8Array> {
  if (f.content !== undefined) return new TextEncoder().encode(f.content);
  const dir = join(run.paths.stateDir, "files");
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const dest = join(dir, wantedSha256(f));
  try {
    run.count(
      await download(f.url as string, dest, {
        ...run.o.download,
        fetch: run.o.fetch ?? run.o.download?.fetch,
        expectSize: f.size as number,
        sha256: f.sha256 as string,
      }),
    );
  } catch (e) {
    const d = isHeroError(e, "download") ? e.detail : {};
    if (d.stats) run.count(d.stats as DownloadStats);
    throw new HeroError("apply.download", `config file ${f.path}: ${(e as Error).message}`);
  }
  const data = readFileSync(dest);
  rmSync(dest, { force: true });
  return data;
}

interface Prev {
  at: string;
  data: Uint8Array | null;
  mode: number;
  uid: number;
  gid: number;
}

function previous(at: string): Prev {
  try {
    const st = lstatSync(at);
    if (st.isFile())
      return { at, data: readFileSync(at), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    // absent
  }
  return { at, data: null, mode: 0, uid: 0, gid: 0 };
}

/**
 * The config-file step of an update run. Null when the manifest ships no
 * files for this machine. The outcome of a failed health check is in
 * run.res (rolled-back).
 */
export async function applyFiles(
  m: Manifest,
  run: Run,
): Promise<{ changed: string[]; restarted: string[] } | null> {
  const files = sectionFiles(m, run.src.role, run.src.env);
  if (!files.length) return null;
  const root = run.paths.root;
  const passwd = readText(`${root}/etc/passwd`);
  const group = readText(`${root}/etc/group`);
  const ids = (f: ConfigFile) => ({
    uid: idOf(f.owner, passwd, "owner"),
    gid: idOf(f.group, group, "group"),
  });
  const changes = diffFiles(files, (p) => facts(`${root}${p}`), ids);
  const out = { changed: changes.map((c) => c.file.path), restarted: [] as string[] };
  if (run.o.check || !changes.length) return out;
  // Fetch everything first: a failure here changes nothing.
  const data = new Map<FileChange, Uint8Array>();
  for (const c of changes) if (c.content) data.set(c, await contentOf(c.file, run));
  await run.step("files");
  const prevs: Prev[] = [];
  for (const c of changes) {
    const at = `${root}${c.file.path}`;
    const { uid, gid } = ids(c.file);
    const prev = previous(at);
    prevs.push(prev);
    writeFile(at, data.get(c) ?? prev.data ?? new Uint8Array(), c.file.mode, uid, gid);
  }
  run.hooks.log(`config files: ${out.changed.join(", ")}`);
  const services = fileServices(changes);
  if (!services.length) return out;
  await run.hooks.restart(services);
  out.restarted = services;
  const bad = await run.hooks.health(services);
  if (bad.length) {
    run.hooks.log(
      `unhealthy after the config change: ${bad.join(", ")}; putting the old files back`,
    );
    for (const p of prevs.reverse()) {
      if (p.data) writeFile(p.at, p.data, p.mode, p.uid, p.gid);
      else rmSync(p.at, { force: true });
    }
    await run.hooks.restart(services);
    run.res.outcome = "rolled-back";
    run.res.code = "health";
    run.res.error = `unhealthy after the config change: ${bad.join(", ")}`;
  }
  return out;
}

/**
 * The machine-config steps of a run, after the binaries: config files, then
 * the environment's access section. A run that changed nothing else but
 * these is "updated" ("available" with --check).
 */
export async function applyMachineConfig(m: Manifest, run: Run): Promise<void> {
  const { res } = run;
  const files = await applyFiles(m, run);
  if (files) res.files = files;
  if (res.outcome === "rolled-back") return;
  const access = await applyAccess(m, run);
  if (access) res.access = access;
  const changed = (files?.changed.length ?? 0) + (access?.changed.length ?? 0);
  if (changed && (res.outcome === "up-to-date" || res.outcome === "unchanged"))
    res.outcome = run.o.check ? "available" : "updated";
}
