/**
 * Config files shipped by the signed manifest (seed 001: "download the
 * initial binaries and config files from the bootstrap server"): a `[[vm.files]]`
 * or `[[node.files]]` entry names a path, its content (inline, or a URL with
 * its sha256 and size), owner, group, mode and the services to restart when
 * it changes. Pure: the schema, the forbidden paths, the per-environment
 * resolution, owner names to ids and the diff against what is on the
 * machine. Applied by update/config-files.ts, and written at deploy time by
 * the injector (host/inject.ts).
 */
import * as v from "valibot";
import { HeroError } from "./errors.ts";

/** Paths of letters, digits and `_ . + @ -`, absolute, no `.` or `..` segment (as install paths). */
const PATH_RE = /^(?!.*\/\.{1,2}(?:\/|$))(?:\/[A-Za-z0-9_.+@-]+)+$/;

/**
 * Places a config file may never be written: the kernel's file systems, the
 * updater's own state and trust keys, and what the access sections manage
 * (accounts, sudoers, SSH), so a config file can neither replace the trust
 * root nor get around the lockout rule.
 */
const FORBIDDEN = [
  "/proc",
  "/sys",
  "/dev",
  "/run",
  "/boot",
  "/var/lib/hero-init",
  "/usr/lib/hero",
  "/etc/passwd",
  "/etc/group",
  "/etc/shadow",
  "/etc/gshadow",
  "/etc/sudoers",
  "/etc/sudoers.d",
  "/etc/ssh",
  "/root/.ssh",
  "/etc/hero-init",
  "/sbin/init",
  "/init",
];

/** Pure: why a config file may not be written at `path`, or null. */
export function configPathProblem(path: string): string | null {
  if (!PATH_RE.test(path) || path.length > 4096)
    return 'must be an absolute path of letters, digits, "_ . + @ -" and "/" (no "..", spaces or control characters)';
  const hit = FORBIDDEN.find((f) => path === f || path.startsWith(`${f}/`));
  if (hit) return `is under ${hit}, which config files may not change`;
  if (path.startsWith("/home/") && path.includes("/.ssh"))
    return "is an SSH directory, which the access sections manage";
  return null;
}

const Owner = v.pipe(
  v.string(),
  v.regex(/^([a-z_][a-z0-9_-]{0,31}|\d{1,9})$/, "must be a user or group name, or a number"),
);

/** One config file. */
export const ConfigFileSchema = v.pipe(
  v.strictObject({
    path: v.pipe(
      v.string(),
      v.rawCheck(({ dataset, addIssue }) => {
        const p = dataset.typed ? configPathProblem(dataset.value) : null;
        if (p) addIssue({ message: p });
      }),
    ),
    /** Inline content (at most 1 MiB) … */
    content: v.optional(v.pipe(v.string(), v.maxLength(1024 * 1024, "must be at most 1 MiB"))),
    /** … or a URL with its sha256 and size. */
    url: v.optional(v.pipe(v.string(), v.url("must be a URL"))),
    sha256: v.optional(
      v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits")),
    ),
    size: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(64 * 1024 * 1024))),
    owner: v.optional(Owner, "root"),
    group: v.optional(Owner, "root"),
    mode: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0o7777)), 0o644),
    /** Services to restart when this file changes. */
    services: v.optional(
      v.array(
        v.pipe(
          v.string(),
          v.regex(/^[A-Za-z0-9_@][A-Za-z0-9_@.-]{0,127}$/, "must be a service name"),
        ),
      ),
      [],
    ),
  }),
  v.check(
    (f) =>
      f.content !== undefined
        ? f.url === undefined && f.sha256 === undefined && f.size === undefined
        : f.url !== undefined && f.sha256 !== undefined && f.size !== undefined,
    "set either content, or url with sha256 and size",
  ),
);

/** A validated config file entry. */
export type ConfigFile = v.InferOutput<typeof ConfigFileSchema>;

type Sec = { files?: ConfigFile[] } | undefined;

/**
 * Pure: the files of one role and environment of a manifest (passed
 * structurally: lib/manifest.ts imports this file): the environment's
 * entries replace the top-level ones by path.
 */
export function sectionFiles(
  m: { node: Sec; vm: Sec; env: Record<string, { node?: Sec; vm?: Sec } | undefined> },
  role: "node" | "vm",
  env?: string,
): ConfigFile[] {
  const out = new Map((m[role]?.files ?? []).map((f) => [f.path, f] as const));
  if (env) for (const f of m.env[env]?.[role]?.files ?? []) out.set(f.path, f);
  return [...out.values()];
}

/** The sha256 (hex) of the content a file entry asks for. */
export function wantedSha256(f: ConfigFile): string {
  if (f.content === undefined) return f.sha256 as string;
  return new Bun.CryptoHasher("sha256").update(f.content).digest("hex");
}

/** What is on the machine for one path. */
export interface FileFacts {
  sha256: string | null;
  mode: number;
  uid: number;
  gid: number;
}

/** One change of a config-file plan. */
export interface FileChange {
  file: ConfigFile;
  /** Content differs (or the file is absent): write it. False: only owner/mode differ. */
  content: boolean;
}

/**
 * Pure: which files must change. `facts(path)` is what the machine has;
 * `ids(owner, group)` resolves names to numbers (the machine's passwd).
 */
export function diffFiles(
  files: readonly ConfigFile[],
  facts: (path: string) => FileFacts | null,
  ids: (f: ConfigFile) => { uid: number; gid: number },
): FileChange[] {
  const out: FileChange[] = [];
  for (const f of files) {
    const have = facts(f.path);
    const { uid, gid } = ids(f);
    if (!have || have.sha256 !== wantedSha256(f)) out.push({ file: f, content: true });
    else if ((have.mode & 0o7777) !== f.mode || have.uid !== uid || have.gid !== gid)
      out.push({ file: f, content: false });
  }
  return out;
}

/**
 * Pure: name → id from passwd/group text; a number stays a number. Shared by
 * the update engine (the machine's tables) and the injector (the image's),
 * so both resolve an owner the same way and agree on what is in place.
 */
export function idOf(name: string, table: string, what: string): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const line of table.split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f[2] !== undefined && /^\d+$/.test(f[2])) return Number(f[2]);
  }
  throw new HeroError("files.owner", `${what} "${name}" does not exist on this machine`);
}

/** The services to restart for a set of file changes (each once, in order). */
export const fileServices = (changes: readonly FileChange[]) => [
  ...new Set(changes.flatMap((c) => c.file.services)),
];
