/**
 * bootstrapper.toml: the fleet's binaries. This module holds the schema of
 * one binary entry and of the `[node]`/`[vm]` sections as the injector uses
 * them; signatures, environments, rollouts and the update engine come with
 * the "Signed manifest" issue and extend this schema. Shared by host and
 * guest. See docs/manifest.md (with that issue).
 */
import * as v from "valibot";
import { InputError } from "./errors.ts";
import { locateKey, parseToml } from "./toml.ts";

/** Binary names: a file name, never a path. */
export const BINARY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$/;

const Sha256 = v.pipe(
  v.string(),
  v.regex(/^[0-9a-f]{64}$/, "must be 64 lower-case hex digits (sha256)"),
);
const AbsPath = v.pipe(
  v.string(),
  v.regex(/^\/[^\0]*$/, "must be an absolute path"),
  v.check((p) => !p.split("/").includes(".."), 'must not contain ".."'),
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
  services: v.optional(v.array(v.string()), []),
  arch: v.optional(v.picklist(["x86_64", "aarch64"]), "x86_64"),
});

/** A validated binary entry. */
export type Binary = v.InferOutput<typeof BinarySchema>;

const Section = v.strictObject({ binaries: v.optional(v.array(BinarySchema), []) });

/** The parts of the manifest the injector reads. */
export const ManifestSchema = v.looseObject({
  version: v.optional(v.pipe(v.number(), v.integer(), v.minValue(0))),
  node: v.optional(Section, { binaries: [] }),
  vm: v.optional(Section, { binaries: [] }),
});

/** A validated manifest (the sections the injector needs). */
export type Manifest = v.InferOutput<typeof ManifestSchema>;

/** Parses manifest text; throws InputError with file, line and field. */
export function parseManifest(text: string, file: string): Manifest {
  const raw = parseToml(text, file);
  const res = v.safeParse(ManifestSchema, raw);
  if (!res.success) {
    const issue = res.issues[0];
    const path = (issue.path ?? []).map((p) => p.key as string | number);
    throw new InputError("schema", issue.message, {
      file,
      line: locateKey(text, path),
      field: path.join("."),
    });
  }
  for (const sec of ["node", "vm"] as const) {
    const seen = new Set<string>();
    for (const b of res.output[sec].binaries) {
      if (seen.has(b.name))
        throw new InputError("schema", `binary "${b.name}" listed twice`, {
          file,
          field: `${sec}.binaries`,
        });
      seen.add(b.name);
    }
  }
  return res.output;
}
