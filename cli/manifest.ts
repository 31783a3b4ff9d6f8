/**
 * `hero-init manifest keygen|sign|verify|build|rotate`: the bootstrap
 * server's signing key and minisign-compatible signatures of
 * bootstrapper.toml (any file). Keys and signatures are written atomically
 * (temp file + rename); the secret key is 0600, a key directory keygen
 * creates is 0700, and an existing key is never overwritten.
 *
 * Exit codes: 0 ok, 1 verification failed, 2 usage or input error.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { defineCommand } from "citty";
import { atomicWrite } from "../lib/atomic-file.ts";
import { isHeroError } from "../lib/errors.ts";
import {
  formatPublicKey,
  formatSecretKey,
  generateKey,
  keyIdHex,
  parsePublicKey,
  parseSecretKey,
  signMessage,
  verifyMessage,
} from "../lib/minisign.ts";
import { accountKeyRefs, fetchAccountKeys } from "../update/account-keys.ts";
import { buildManifest, keySetText, publishSigned } from "../update/publish.ts";
import { type Command, optionValues } from "./run.ts";

/** Runs one subcommand's work; any error is "manifest NAME: message", exit 2 (as before). */
function guard(name: string, work: () => number): number {
  try {
    return work();
  } catch (e) {
    console.error(`manifest ${name}: ${(e as Error).message}`);
    return 2;
  }
}

const now = () => Math.floor(Date.now() / 1000);

/** Pure: a positive integer option (a version), or an error naming it. */
export function positiveInt(value: string, flag: string, hint = ""): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`${flag} must be a positive integer${hint}`);
  return n;
}

const keygen = defineCommand({
  meta: {
    name: "keygen",
    description:
      "write DIR/hero.pub (0644) and DIR/hero.key (0600); a new DIR is made 0700; an existing key is never overwritten",
  },
  args: { out: { type: "string", required: true, valueHint: "dir", description: "key directory" } },
  run: ({ args: a }) =>
    guard("keygen", () => {
      const dir = a.out;
      const pub = join(dir, "hero.pub");
      const key = join(dir, "hero.key");
      for (const p of [pub, key])
        if (existsSync(p)) throw new Error(`${p} exists: refusing to overwrite a key`);
      // A new key directory (and its missing parents) is 0700: it holds the secret key.
      if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
      else if (!statSync(dir).isDirectory()) throw new Error(`--out ${dir} is not a directory`);
      const k = generateKey();
      atomicWrite(key, formatSecretKey(k), 0o600);
      atomicWrite(pub, formatPublicKey(k), 0o644);
      console.log(
        `key ${keyIdHex(k.keyId)}: public ${pub}, secret ${key} (0600, keep it off the fleet)`,
      );
      return 0;
    }),
});

const sign = defineCommand({
  meta: { name: "sign", description: "write FILE.minisig" },
  args: {
    file: { type: "positional", required: true, description: "the file to sign" },
    key: { type: "string", required: true, description: "secret key (hero.key)" },
    comment: { type: "string", description: "trusted comment (default: timestamp and file name)" },
  },
  run: ({ args: a }) =>
    guard("sign", () => {
      const k = parseSecretKey(readFileSync(a.key, "utf8"));
      const data = new Uint8Array(readFileSync(a.file));
      const comment = a.comment ?? `timestamp:${now()}\tfile:${basename(a.file)}\thashed`;
      const out = `${a.file}.minisig`;
      atomicWrite(out, signMessage(k, data, comment), 0o644);
      console.log(`signed ${a.file} with key ${keyIdHex(k.keyId)}: ${out}`);
      return 0;
    }),
});

const build = defineCommand({
  meta: { name: "build", description: "hash DIR into bootstrapper.toml and sign it" },
  args: {
    dir: {
      type: "positional",
      required: true,
      description: "DIR/{vm,node}/<name>/<version>/<name> …",
    },
    "base-url": { type: "string", required: true, description: "URL DIR is served at" },
    key: { type: "string", required: true, description: "secret key (hero.key)" },
    version: { type: "string", description: "manifest version (default: the Unix time)" },
    "expires-days": { type: "string", default: "30", description: "days until it expires" },
    out: { type: "string", description: "output file (default: DIR/bootstrapper.toml)" },
  },
  run: async ({ args: a }) => {
    // The named accounts' keys first (bounded fetches): nothing is built or signed without them.
    let accountKeys: Map<string, string[]>;
    try {
      const refs = accountKeyRefs(a.dir);
      accountKeys = await fetchAccountKeys(refs);
      for (const [spec, keys] of accountKeys)
        console.log(`${spec}: ${keys.length} key${keys.length === 1 ? "" : "s"}`);
    } catch (e) {
      console.error(`manifest build: ${(e as Error).message}`);
      return 2;
    }
    return guard("build", () => {
      const k = parseSecretKey(readFileSync(a.key, "utf8"));
      const version = positiveInt(a.version ?? String(now()), "--version");
      const days = Number(a["expires-days"]);
      if (!(days > 0)) throw new Error("--expires-days must be a positive number");
      const out = a.out ?? join(a.dir, "bootstrapper.toml");
      const text = buildManifest(a.dir, {
        baseUrl: a["base-url"],
        version,
        expires: new Date(Date.now() + days * 86400_000),
        accountKeys,
      });
      publishSigned(
        out,
        new TextEncoder().encode(text),
        k,
        `timestamp:${now()}\tfile:${basename(out)}\tversion:${version}\thashed`,
      );
      console.log(`built ${out} version ${version} signed with key ${keyIdHex(k.keyId)}`);
      return 0;
    });
  },
});

const ROTATE_ARGS = {
  key: { type: "string", required: true, description: "the old secret key (signs the new set)" },
  new: {
    type: "string",
    required: true,
    valueHint: "pub",
    description: "a public key of the new set (repeat for each)",
  },
  version: { type: "string", required: true, description: "key set version, above the last" },
  out: { type: "string", default: "keys.toml", description: "output file" },
} as const;

const rotate = defineCommand({
  meta: {
    name: "rotate",
    description: "write keys.toml (the next trusted keys) signed by the old key",
  },
  args: ROTATE_ARGS,
  run: ({ args: a, rawArgs }) =>
    guard("rotate", () => {
      const k = parseSecretKey(readFileSync(a.key, "utf8"));
      const news = optionValues(rawArgs, ROTATE_ARGS, "new").map((f) => {
        const line = readFileSync(f, "utf8").trim().split("\n").at(-1) ?? "";
        parsePublicKey(line);
        return line;
      });
      const version = positiveInt(a.version, "--version", " (higher than the last key set)");
      const text = keySetText(version, news);
      publishSigned(a.out, new TextEncoder().encode(text), k, `keys:${version}`);
      console.log(
        `wrote ${a.out} (key set ${version}: ${news.length} keys) signed with key ${keyIdHex(k.keyId)}`,
      );
      return 0;
    }),
});

const verify = defineCommand({
  meta: { name: "verify", description: "check FILE's signature (exit 1 if it does not hold)" },
  args: {
    file: { type: "positional", required: true, description: "the signed file" },
    pub: { type: "string", required: true, description: "public key (hero.pub)" },
    sig: { type: "string", description: "signature file (default: FILE.minisig)" },
    json: { type: "boolean", description: "print the result as JSON" },
  },
  run: ({ args: a }) =>
    guard("verify", () => {
      const pub = parsePublicKey(readFileSync(a.pub, "utf8"));
      const sigPath = a.sig ?? `${a.file}.minisig`;
      try {
        const v = verifyMessage(
          new Uint8Array(readFileSync(a.file)),
          readFileSync(sigPath, "utf8"),
          [pub],
        );
        if (a.json) console.log(JSON.stringify({ ok: true, ...v }));
        else
          console.log(
            `${a.file}: good signature from key ${v.keyId}\ntrusted comment: ${v.trustedComment}`,
          );
        return 0;
      } catch (e) {
        if (!isHeroError(e, "signature")) throw e;
        if (a.json) console.log(JSON.stringify({ ok: false, error: e.message }));
        else console.error(`${a.file}: ${sigPath}: ${e.message}`);
        return 1;
      }
    }),
});

/** `hero-init manifest …`. */
export const manifest: Command = {
  meta: {
    name: "manifest",
    description: "signing keys, signatures and manifests (minisign-compatible Ed25519)",
    notes: `Signatures are minisign's format: \`minisign -Vm FILE -p PUB\` verifies them.
build: DIR/{vm,node}/<name>/<version>/<name> (+ env/<env>/…, <name>/meta.toml); the
highest version of each name is listed; --version defaults to the current Unix time.
exit codes: 0 ok, 1 verification failed, 2 usage or input error`,
  },
  subCommands: { keygen, sign, verify, build, rotate },
};
