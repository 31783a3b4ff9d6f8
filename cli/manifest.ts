/**
 * `hero-init manifest keygen|sign|verify`: the bootstrap server's signing
 * key and minisign-compatible signatures of bootstrapper.toml (any file).
 * Keys and signatures are written atomically (temp file + rename); the
 * secret key is 0600, a key directory keygen creates is 0700, and an
 * existing key is never overwritten.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import {
  formatPublicKey,
  formatSecretKey,
  generateKey,
  keyIdHex,
  parsePublicKey,
  parseSecretKey,
  SignatureError,
  signMessage,
  verifyMessage,
} from "../lib/minisign.ts";
import { atomicWrite } from "../update/engine.ts";
import { buildManifest, keySetText, publishSigned } from "../update/publish.ts";

const USAGE = `usage:
  hero-init manifest keygen --out DIR            write DIR/hero.pub (0644) and DIR/hero.key (0600);
                                                 a new DIR is made 0700; an existing key is never overwritten
  hero-init manifest sign FILE --key KEY [--comment TEXT]   write FILE.minisig
  hero-init manifest verify FILE --pub PUB [--sig FILE.minisig] [--json]
  hero-init manifest build DIR --base-url URL --key KEY [--version N] [--expires-days D] [--out FILE]
                                                 hash DIR into bootstrapper.toml and sign it
  hero-init manifest rotate --key OLDKEY --new PUB [--new PUB]... --version N [--out FILE]
                                                 write keys.toml (the next trusted keys) signed by the old key
Signatures are minisign's format: \`minisign -Vm FILE -p PUB\` verifies them.
build: DIR/{vm,node}/<name>/<version>/<name> (+ env/<env>/…, <name>/meta.toml); the
highest version of each name is listed; --version defaults to the current Unix time.`;

function flags(args: string[]): { pos: string[]; opt: Map<string, string | true> } {
  const pos: string[] = [];
  const opt = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--json") opt.set("json", true);
    else if (a.startsWith("--")) {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      opt.set(a.slice(2), v);
    } else pos.push(a);
  }
  return { pos, opt };
}

/** Runs the command; returns the exit code (0 ok, 1 verification failed, 2 usage/input error). */
export async function runManifest(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  try {
    const { pos, opt } = flags(rest);
    const need = (k: string) => {
      const v = opt.get(k);
      if (typeof v !== "string") throw new Error(`--${k} is required\n${USAGE}`);
      return v;
    };
    if (cmd === "keygen") {
      const dir = need("out");
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
    }
    if (cmd === "sign") {
      const file = pos[0];
      if (!file) throw new Error(`sign: which file?\n${USAGE}`);
      const k = parseSecretKey(readFileSync(need("key"), "utf8"));
      const data = new Uint8Array(readFileSync(file));
      const comment =
        (opt.get("comment") as string | undefined) ??
        `timestamp:${Math.floor(Date.now() / 1000)}\tfile:${basename(file)}\thashed`;
      const out = `${file}.minisig`;
      atomicWrite(out, signMessage(k, data, comment), 0o644);
      console.log(`signed ${file} with key ${keyIdHex(k.keyId)}: ${out}`);
      return 0;
    }
    if (cmd === "build") {
      const dir = pos[0];
      if (!dir) throw new Error(`build: which directory?\n${USAGE}`);
      const k = parseSecretKey(readFileSync(need("key"), "utf8"));
      const version = Number(opt.get("version") ?? Math.floor(Date.now() / 1000));
      const days = Number(opt.get("expires-days") ?? 30);
      if (!Number.isSafeInteger(version) || version < 1)
        throw new Error("--version must be a positive integer");
      if (!(days > 0)) throw new Error("--expires-days must be a positive number");
      const out = (opt.get("out") as string | undefined) ?? join(dir, "bootstrapper.toml");
      const text = buildManifest(dir, {
        baseUrl: need("base-url"),
        version,
        expires: new Date(Date.now() + days * 86400_000),
      });
      publishSigned(
        out,
        new TextEncoder().encode(text),
        k,
        `timestamp:${Math.floor(Date.now() / 1000)}\tfile:${basename(out)}\tversion:${version}\thashed`,
      );
      console.log(`built ${out} version ${version} signed with key ${keyIdHex(k.keyId)}`);
      return 0;
    }
    if (cmd === "rotate") {
      const k = parseSecretKey(readFileSync(need("key"), "utf8"));
      const news: string[] = [];
      for (let i = 0; i < rest.length; i++)
        if (rest[i] === "--new") {
          const f = rest[i + 1];
          if (!f) throw new Error("--new needs a public key file");
          const line = readFileSync(f, "utf8").trim().split("\n").at(-1) ?? "";
          parsePublicKey(line);
          news.push(line);
        }
      if (!news.length) throw new Error(`rotate: --new PUB is required\n${USAGE}`);
      const version = Number(need("version"));
      if (!Number.isSafeInteger(version) || version < 1)
        throw new Error("--version must be a positive integer (higher than the last key set)");
      const out = (opt.get("out") as string | undefined) ?? "keys.toml";
      const text = keySetText(version, news);
      publishSigned(out, new TextEncoder().encode(text), k, `keys:${version}`);
      console.log(
        `wrote ${out} (key set ${version}: ${news.length} keys) signed with key ${keyIdHex(k.keyId)}`,
      );
      return 0;
    }
    if (cmd === "verify") {
      const file = pos[0];
      if (!file) throw new Error(`verify: which file?\n${USAGE}`);
      const pub = parsePublicKey(readFileSync(need("pub"), "utf8"));
      const sigPath = (opt.get("sig") as string | undefined) ?? `${file}.minisig`;
      try {
        const v = verifyMessage(new Uint8Array(readFileSync(file)), readFileSync(sigPath, "utf8"), [
          pub,
        ]);
        if (opt.get("json")) console.log(JSON.stringify({ ok: true, ...v }));
        else
          console.log(
            `${file}: good signature from key ${v.keyId}\ntrusted comment: ${v.trustedComment}`,
          );
        return 0;
      } catch (e) {
        if (!(e instanceof SignatureError)) throw e;
        if (opt.get("json")) console.log(JSON.stringify({ ok: false, error: e.message }));
        else console.error(`${file}: ${sigPath}: ${e.message}`);
        return 1;
      }
    }
    console.error(cmd ? `manifest: unknown command "${cmd}"\n${USAGE}` : USAGE);
    return 2;
  } catch (e) {
    console.error(`manifest ${cmd ?? ""}: ${(e as Error).message}`);
    return 2;
  }
}
