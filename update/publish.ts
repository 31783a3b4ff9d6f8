/**
 * The publisher's side (seed 001's "tool that lists and signs a dir"):
 * `buildManifest()` hashes a directory of binaries laid out as the bootstrap
 * server serves it into bootstrapper.toml, and `keySetText()` writes a key
 * rotation document. Signing is lib/minisign.ts; the CLI is
 * `hero-init manifest build|rotate` (cli/manifest.ts).
 *
 * Layout of DIR (the same paths become the URLs):
 *
 *     DIR/vm/<name>/<version>/<name>                 [vm] binaries
 *     DIR/node/<name>/<version>/<name>               [node] binaries
 *     DIR/env/<env>/{vm,node}/<name>/<version>/<name>  per-environment overrides
 *     DIR/.../<name>/meta.toml                       optional: services, path, mode, rollout
 *     DIR/files/{vm,node}.toml                       optional: [[files]] config files (docs/environments.md)
 *     DIR/access/<env>.toml                          optional: that environment's access section
 *                                                    (a user's keys_from accounts: update/account-keys.ts)
 *
 * When a name has several version directories the highest version wins
 * (numeric parts compared as numbers: 1.10.0 > 1.9.2).
 */
import { createHash } from "node:crypto";
import {
  existsSync,
  readdirSync,
  readFileSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { withAccountKeys } from "../lib/account-keys.ts";
import { replaceFile } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import { BINARY_NAME_RE, ENVIRONMENTS, parseManifest } from "../lib/manifest.ts";
import { type SecretKey, signMessage } from "../lib/minisign.ts";
import { parseToml } from "../lib/toml.ts";
import { stringifyToml } from "../lib/toml-stringify.ts";

/** Compares versions: numeric runs as numbers, the rest as text (1.10 > 1.9, 1.0.0 > 1.0.0-rc1 is not claimed). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/(\d+)/).filter(Boolean);
  const pb = b.split(/(\d+)/).filter(Boolean);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : Number.NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : Number.NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx < ny ? -1 : 1;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

const META_KEYS = new Set(["services", "path", "mode", "rollout", "arch"]);

function section(dir: string, rel: string, baseUrl: string): Record<string, unknown>[] {
  const root = join(dir, rel);
  if (!existsSync(root)) return [];
  const out: Record<string, unknown>[] = [];
  for (const name of readdirSync(root).sort()) {
    if (!BINARY_NAME_RE.test(name))
      throw new HeroError("layout", `"${name}" is not a binary name`, { file: join(root, name) });
    const versions = readdirSync(join(root, name)).filter(
      (v) => v !== "meta.toml" && statSync(join(root, name, v)).isDirectory(),
    );
    const version = versions.sort(compareVersions).at(-1);
    if (!version) throw new HeroError("layout", "no version directory", { file: join(root, name) });
    const file = join(root, name, version, name);
    if (!existsSync(file))
      throw new HeroError("layout", `missing ${name} in the version directory`, { file });
    const data = readFileSync(file);
    const entry: Record<string, unknown> = {
      name,
      version,
      url: `${baseUrl.replace(/\/+$/, "")}/${rel}/${name}/${version}/${name}`,
      sha256: createHash("sha256").update(data).digest("hex"),
      size: data.length,
    };
    const metaFile = join(root, name, "meta.toml");
    if (existsSync(metaFile)) {
      const meta = parseToml(readFileSync(metaFile, "utf8"), metaFile);
      for (const [k, val] of Object.entries(meta)) {
        if (!META_KEYS.has(k))
          throw new HeroError("schema", `unknown key (allowed: ${[...META_KEYS].join(", ")})`, {
            file: metaFile,
            field: k,
          });
        entry[k] = val;
      }
    }
    out.push(entry);
  }
  return out;
}

/** Options of {@link buildManifest}. */
export interface BuildOptions {
  /** Public URL of DIR on the bootstrap server. */
  baseUrl: string;
  /** The manifest version (must grow with every publication). */
  version: number;
  expires: Date;
  description?: string;
  /**
   * The keys of the access files' `keys_from` accounts, fetched beforehand
   * (update/account-keys.ts): spec → authorized_keys lines. They are written
   * inline, so they are signed with the manifest.
   */
  accountKeys?: ReadonlyMap<string, string[]>;
}

/**
 * Builds bootstrapper.toml text from DIR (see the module comment) and
 * validates it with the same parser the updaters use, so a published
 * manifest always parses.
 */
export function buildManifest(dir: string, o: BuildOptions): string {
  const doc: Record<string, unknown> = {
    version: o.version,
    expires: o.expires,
  };
  if (o.description) doc.description = o.description;
  for (const role of ["node", "vm"] as const) {
    const bins = section(dir, role, o.baseUrl);
    const files = extraToml(join(dir, "files", `${role}.toml`))?.files;
    if (bins.length || files) doc[role] = files ? { binaries: bins, files } : { binaries: bins };
  }
  const env: Record<string, unknown> = {};
  for (const e of ENVIRONMENTS) {
    const sec: Record<string, unknown> = {};
    for (const role of ["node", "vm"] as const) {
      const bins = section(dir, `env/${e}/${role}`, o.baseUrl);
      if (bins.length) sec[role] = { binaries: bins };
    }
    const access = extraToml(join(dir, "access", `${e}.toml`));
    if (access) sec.access = resolveKeysFrom(access, `access/${e}.toml`, o.accountKeys);
    if (Object.keys(sec).length) env[e] = sec;
  }
  if (Object.keys(env).length) doc.env = env;
  const text = `# bootstrapper.toml: built by \`hero-init manifest build\`; sign it, never edit it after signing\n${stringifyToml(doc)}`;
  parseManifest(text, "built manifest");
  return text;
}

/** An access file with its users' `keys_from` replaced by the fetched keys. */
function resolveKeysFrom(
  access: Record<string, unknown>,
  file: string,
  fetched: ReadonlyMap<string, string[]> = new Map(),
): Record<string, unknown> {
  if (!Array.isArray(access.users)) return access;
  const users = (access.users as Record<string, unknown>[]).map((u, i) => {
    const from = u?.keys_from;
    if (from === undefined) return u;
    const missing = Array.isArray(from) ? from.find((s) => !fetched.has(s as string)) : from;
    if (missing !== undefined)
      throw new HeroError(
        "account-keys",
        `${file}: users.${i}.keys_from: ${JSON.stringify(missing)} was not fetched (\`hero-init manifest build\` fetches the accounts' keys)`,
        { file, field: `users.${i}.keys_from` },
      );
    return withAccountKeys(u, fetched);
  });
  return { ...access, users };
}

/** An optional TOML file of the publisher directory, parsed (null when absent). */
function extraToml(file: string): Record<string, unknown> | null {
  return existsSync(file) ? parseToml(readFileSync(file, "utf8"), file) : null;
}

/** keys.toml: the next trusted key set (sign it with a key of the current set). */
export function keySetText(version: number, publicKeys: string[]): string {
  return `# trusted update keys, version ${version}: signed by a key of the previous set\n${stringifyToml({ version, keys: publicKeys })}`;
}

/** Replaces `path` with `data` (atomically), its mtime at least `minMtimeMs`. */
function replaceWith(path: string, data: string | Uint8Array, minMtimeMs: number): void {
  replaceFile(path, (tmp) => {
    writeFileSync(tmp, data, { mode: 0o644, flag: "wx" });
    const t = new Date(Math.max(Date.now(), minMtimeMs));
    utimesSync(tmp, t, t);
  });
}

/**
 * Publishes a signed file (the manifest, keys.toml): the signature first,
 * then the file, each by rename, so a poller never pairs a new file with an
 * old signature for long. The new file's mtime is at least a second past
 * the old one's: nginx's ETag and Last-Modified have one-second resolution,
 * and two publications of the same size within a second would otherwise
 * keep answering 304 to every poller.
 */
export function publishSigned(
  path: string,
  data: Uint8Array,
  key: SecretKey,
  trustedComment: string,
): void {
  let min = 0;
  try {
    min = Math.floor(statSync(path).mtimeMs / 1000) * 1000 + 1000;
  } catch {
    // first publication
  }
  replaceWith(`${path}.minisig`, signMessage(key, data, trustedComment), min);
  replaceWith(path, data, min);
}
