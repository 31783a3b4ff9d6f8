/**
 * bootstrapper.toml: the fleet's binaries, shared by host (injector, node
 * install) and guest (update engine). A `version` that only grows, an
 * `expires` time, `[node]` and `[vm]` sections of binaries, and per
 * environment (dev, testing, canary, production) sections that override
 * them by name. Pure: parsing, validation and `resolveBinaries()` (which
 * binaries one machine of one environment should run, with rollout
 * buckets). See docs/manifest.md.
 */
import * as v from "valibot";
import { AccessSchema, checkAccess } from "./access.ts";
import { ConfigFileSchema } from "./config-files.ts";
import { ENVIRONMENTS, type Environment } from "./environments.ts";
import { HeroError } from "./errors.ts";
import { SERVICE_NAME_RE } from "./service-spec.ts";
import { locateKey, parseToml } from "./toml.ts";

/** The deployment environments live in lib/environments.ts (vm.toml needs them without this schema). */
export { ENVIRONMENTS, type Environment };

/** Binary names: a file name, never a path. */
export const BINARY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

/**
 * Install paths: absolute, segments of letters, digits and `_ . + @ -`,
 * no `.` or `..` segment. Such a path is also safe as a command in a
 * systemd unit or a zinit file (`hero-init install` writes it there): no
 * space, quote, `%`, `$`, `\` or control character.
 */
export const INSTALL_PATH_RE = /^(?!.*\/\.{1,2}(?:\/|$))(?:\/[A-Za-z0-9_.+@-]+)+$/;

const Sha256 = v.pipe(
  v.string(),
  v.regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits (sha256)"),
);
const AbsPath = v.pipe(
  v.string(),
  v.maxLength(4096, "must be at most 4096 bytes"),
  v.regex(
    INSTALL_PATH_RE,
    'must be an absolute path of letters, digits, "_ . + @ -" and "/" (no "..", spaces or control characters)',
  ),
);
/** A service to restart: the supervisor's service-name rule (a file name, not a path). */
const ServiceName = v.pipe(
  v.string(),
  v.regex(
    SERVICE_NAME_RE,
    'must be a service name: letters, digits, "_ @ . -", starting with a letter, digit, "_" or "@" (no "/", ".." or control characters)',
  ),
);

/** One binary of a `[node]` or `[vm]` section. */
export const BinarySchema = v.strictObject({
  name: v.pipe(v.string(), v.regex(BINARY_NAME_RE, 'must be a file name (no "/" or "..")')),
  version: v.pipe(
    v.string(),
    v.regex(/^[A-Za-z0-9][A-Za-z0-9_.+~-]{0,63}$/, "must be a version like 1.2.3"),
  ),
  url: v.pipe(v.string(), v.url("must be a URL")),
  sha256: Sha256,
  size: v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(4 * 1024 ** 3)),
  /** For a .tar.gz release archive: the member that is the binary (default: the `name`). */
  archive_member: v.optional(v.pipe(v.string(), v.minLength(1))),
  /** Where it is installed (a symlink to the versioned file); default /usr/bin/<name>. */
  path: v.optional(AbsPath),
  mode: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(0o7777)), 0o755),
  /** Services to restart when this binary changes. */
  services: v.optional(v.array(ServiceName), []),
  arch: v.optional(v.picklist(["x86_64", "aarch64"]), "x86_64"),
  /**
   * Staged rollout: the percentage of machines (0-100) that take this
   * version; a machine outside the bucket keeps the version it runs.
   */
  rollout: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(100))),
});

/** A validated binary entry. */
export type Binary = v.InferOutput<typeof BinarySchema>;

/** Whether a manifest binary is a release archive (tar.gz) rather than the binary itself. */
export const isArchive = (b: Binary) =>
  b.archive_member !== undefined || /\.(tar\.gz|tgz)$/.test(new URL(b.url).pathname);

const Section = v.strictObject({
  binaries: v.optional(v.array(BinarySchema), []),
  /** Config files (lib/config-files.ts), shipped and updated like binaries. */
  files: v.optional(v.array(ConfigFileSchema), []),
});

const EnvSection = v.strictObject({
  /** Users, SSH keys, sudo and sshd of this environment (lib/access.ts, docs/environments.md). */
  access: v.optional(AccessSchema),
  node: v.optional(Section),
  vm: v.optional(Section),
});

/** A TOML offset date-time (`expires = 2027-01-01T00:00:00Z`) or the same as an RFC 3339 string. */
const Expires = v.pipe(
  v.union([v.date(), v.string()], "must be a date-time like 2027-01-01T00:00:00Z"),
  v.transform((d) => (d instanceof Date ? new Date(d.getTime()) : new Date(d))),
  v.check((d) => !Number.isNaN(d.getTime()), "must be a date-time like 2027-01-01T00:00:00Z"),
);

/** The whole manifest. */
export const ManifestSchema = v.strictObject({
  /** Grows with every publication; updaters refuse a lower one (rollback). */
  version: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(2 ** 53 - 1))),
  /** After this instant updaters refuse the manifest (freeze attack). */
  expires: v.optional(Expires),
  /** Free text shown by `manifest verify` and the UI. */
  description: v.optional(v.string()),
  node: v.optional(Section, { binaries: [], files: [] }),
  vm: v.optional(Section, { binaries: [], files: [] }),
  /** Per-environment sections; their binaries replace the top-level ones of the same name. */
  env: v.optional(
    v.strictObject(
      {
        dev: v.optional(EnvSection),
        testing: v.optional(EnvSection),
        canary: v.optional(EnvSection),
        production: v.optional(EnvSection),
      },
      "environments are dev, testing, canary and production",
    ),
    {},
  ),
});

/** A validated manifest (the sections the injector needs). */
export type Manifest = v.InferOutput<typeof ManifestSchema>;

/** Parses manifest text; throws HeroError with file, line and field. */
export function parseManifest(text: string, file: string): Manifest {
  const raw = parseToml(text, file);
  const res = v.safeParse(ManifestSchema, raw);
  if (!res.success) {
    const issue = res.issues[0];
    const path = (issue.path ?? []).map((p) => p.key as string | number);
    throw new HeroError("schema", issue.message, {
      file,
      line: locateField(text, path),
      field: path.join("."),
    });
  }
  const m = res.output;
  const sections: [string, { binaries: Binary[] } | undefined][] = [
    ["node", m.node],
    ["vm", m.vm],
  ];
  for (const e of ENVIRONMENTS)
    sections.push([`env.${e}.node`, m.env[e]?.node], [`env.${e}.vm`, m.env[e]?.vm]);
  for (const [field, sec] of sections) {
    const seen = new Set<string>();
    for (const [i, b] of (sec?.binaries ?? []).entries()) {
      if (seen.has(b.name))
        throw new HeroError("schema", `binary "${b.name}" listed twice`, {
          file,
          line: locateField(text, [...field.split("."), "binaries", i, "name"]),
          field: `${field}.binaries`,
        });
      seen.add(b.name);
    }
  }
  checkAccess(Object.fromEntries(ENVIRONMENTS.map((e) => [e, m.env[e]?.access])), (e, path) => {
    const full = ["env", e, "access", ...path];
    return { file, line: locateKey(text, full), field: full.join(".") };
  });
  return m;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/**
 * Pure: the line of a schema issue. Counts `[[….binaries]]` headers, so
 * `vm.binaries.2.services.0` points into the third binary's table, not the
 * first; anything else is located by {@link locateKey}.
 */
export function locateField(text: string, path: readonly (string | number)[]): number | undefined {
  const at = path.findIndex((p) => typeof p === "number");
  if (at > 0 && path[at - 1] === "binaries") {
    const header = new RegExp(`^\\s*\\[\\[\\s*${escapeRe(path.slice(0, at).join("."))}\\s*\\]\\]`);
    const lines = text.split("\n");
    let nth = -1;
    for (let l = 0; l < lines.length; l++) {
      if (!header.test(lines[l] ?? "") || ++nth !== path[at]) continue;
      const key = path[at + 1];
      if (typeof key === "string") {
        const keyRe = new RegExp(`^\\s*("?)${escapeRe(key)}\\1\\s*=`);
        for (let k = l + 1; k < lines.length && !/^\s*\[/.test(lines[k] ?? ""); k++)
          if (keyRe.test(lines[k] ?? "")) return k + 1;
      }
      return l + 1;
    }
  }
  return locateKey(text, path);
}

/** The binaries of one role and environment: the environment's entries replace the top-level ones by name. */
export function sectionBinaries(m: Manifest, role: "node" | "vm", env?: Environment): Binary[] {
  const out = new Map(m[role].binaries.map((b) => [b.name, b] as const));
  if (env) for (const b of m.env[env]?.[role]?.binaries ?? []) out.set(b.name, b);
  return [...out.values()];
}

/**
 * Deterministic rollout bucket (0-99) of a machine for one binary version:
 * the first 32 bits of sha256(machine id NUL name NUL version) mod 100. The
 * same machine lands in the same bucket on every poll, and a new version
 * reshuffles which machines go first.
 */
export function rolloutBucket(machineId: string, name: string, version: string): number {
  const h = new Bun.CryptoHasher("sha256").update(`${machineId}\0${name}\0${version}`).digest();
  return (h.readUInt32BE(0) >>> 0) % 100;
}

/** What one machine should run, and what it keeps back and why. */
export interface Resolution {
  /** The binaries this machine should run now. */
  wanted: Binary[];
  /** Binaries held at the installed version: pinned locally, or outside the rollout bucket. */
  held: { name: string; version: string; reason: string }[];
}

/**
 * Pure: resolves the manifest for one machine. `installed` maps name to the
 * version on disk. A pinned binary, or one whose rollout bucket is not yet
 * reached, keeps its installed version (a binary that is not installed yet
 * is installed whatever its rollout, so a new machine is complete).
 */
export function resolveBinaries(
  m: Manifest,
  o: {
    role: "node" | "vm";
    env?: Environment;
    machineId: string;
    installed: ReadonlyMap<string, string>;
    pins?: readonly string[];
  },
): Resolution {
  const wanted: Binary[] = [];
  const held: Resolution["held"] = [];
  const pins = new Set(o.pins ?? []);
  for (const b of sectionBinaries(m, o.role, o.env)) {
    const have = o.installed.get(b.name);
    if (have !== undefined && have !== b.version) {
      if (pins.has(b.name)) {
        held.push({ name: b.name, version: have, reason: `pinned (manifest has ${b.version})` });
        continue;
      }
      if (b.rollout !== undefined) {
        const bucket = rolloutBucket(o.machineId, b.name, b.version);
        if (bucket >= b.rollout) {
          held.push({
            name: b.name,
            version: have,
            reason: `rollout of ${b.version} at ${b.rollout}%, this machine is in bucket ${bucket}`,
          });
          continue;
        }
      }
    }
    wanted.push(b);
  }
  return { wanted, held };
}

/** One change of an update plan. */
export interface Change {
  binary: Binary;
  /** The installed version, if any. */
  from?: string;
}

/**
 * Pure manifest diff: which wanted binaries must be installed (absent or
 * at another version). Binaries on disk but no longer in the manifest are
 * listed in `orphaned` and left alone (removing a binary a service still
 * runs is an operator's decision).
 */
export function diffBinaries(
  wanted: readonly Binary[],
  installed: ReadonlyMap<string, string>,
): { changes: Change[]; unchanged: Binary[]; orphaned: string[] } {
  const changes: Change[] = [];
  const unchanged: Binary[] = [];
  for (const b of wanted) {
    const from = installed.get(b.name);
    if (from === b.version) unchanged.push(b);
    else changes.push(from === undefined ? { binary: b } : { binary: b, from });
  }
  const names = new Set(wanted.map((b) => b.name));
  const orphaned = [...installed.keys()].filter((n) => !names.has(n)).sort();
  return { changes, unchanged, orphaned };
}

/** The services to restart for a set of changes (each once, in manifest order). */
export function affectedServices(changes: readonly Change[]): string[] {
  return [...new Set(changes.flatMap((c) => c.binary.services))];
}
