/**
 * The publisher's fetch of keys from named accounts (lib/account-keys.ts
 * says what and why): `accountKeyRefs()` finds the `keys_from` entries of
 * the publisher directory's access files, `fetchAccountKeys()` fetches
 * each list once (a bounded GET: 64 KiB, 20 s) and checks every line.
 * Any failure stops the build, naming the file, the field and the account:
 * a manifest is never signed with an account's keys missing.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { accountKeysUrl, MAX_ACCOUNT_KEYS_BYTES, parseAccountKeys } from "../lib/account-keys.ts";
import { ENVIRONMENTS } from "../lib/environments.ts";
import { HeroError } from "../lib/errors.ts";
import { parseToml } from "../lib/toml.ts";
import { conditionalGet } from "./download.ts";
import type { FetchFn } from "./request.ts";

/** One `keys_from` entry: where it is written and what it names. */
export interface AccountKeyRef {
  /** access/<env>.toml, relative to the publisher directory. */
  file: string;
  /** users.N.keys_from.M */
  field: string;
  spec: string;
  url: string;
}

const refError = (file: string, field: string, message: string) =>
  new HeroError("schema", `${file}: ${field}: ${message}`, { file, field });

/** The `keys_from` entries of DIR/access/<env>.toml, checked for shape (no fetch). */
export function accountKeyRefs(dir: string): AccountKeyRef[] {
  const refs: AccountKeyRef[] = [];
  for (const env of ENVIRONMENTS) {
    const file = join("access", `${env}.toml`);
    if (!existsSync(join(dir, file))) continue;
    const doc = parseToml(readFileSync(join(dir, file), "utf8"), file);
    const users = Array.isArray(doc.users) ? (doc.users as unknown[]) : [];
    users.forEach((u, i) => {
      const from = (u as Record<string, unknown> | null)?.keys_from;
      if (from === undefined) return;
      if (!Array.isArray(from) || from.length > 16)
        throw refError(file, `users.${i}.keys_from`, "must be a list of at most 16 accounts");
      from.forEach((spec, j) => {
        const field = `users.${i}.keys_from.${j}`;
        if (typeof spec !== "string") throw refError(file, field, "must be a string");
        const r = accountKeysUrl(spec);
        if ("error" in r) throw refError(file, field, `${JSON.stringify(spec)} ${r.error}`);
        refs.push({ file, field, spec, url: r.url });
      });
    });
  }
  return refs;
}

/** Options of {@link fetchAccountKeys}. */
export interface FetchAccountKeysOptions {
  fetch?: FetchFn;
  /** Per list (ms); default 20 s. */
  timeoutMs?: number;
}

/** Fetches every account's list once; spec → its authorized_keys lines. */
export async function fetchAccountKeys(
  refs: AccountKeyRef[],
  o: FetchAccountKeysOptions = {},
): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const ref of refs) {
    if (out.has(ref.spec)) continue;
    const where = `${ref.file}: ${ref.field} (${ref.spec})`;
    let body: Uint8Array;
    try {
      const r = await conditionalGet(ref.url, {
        maxBytes: MAX_ACCOUNT_KEYS_BYTES,
        timeoutMs: o.timeoutMs ?? 20_000,
        fetch: o.fetch,
      });
      if (r.status !== 200) throw new Error(`${ref.url}: unexpected ${r.status}`);
      body = r.body;
    } catch (e) {
      throw new HeroError("account-keys", `${where}: ${(e as Error).message}`, {
        file: ref.file,
        field: ref.field,
      });
    }
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(body);
    } catch {
      throw new HeroError("account-keys", `${where}: ${ref.url}: the list is not UTF-8 text`, {
        file: ref.file,
        field: ref.field,
      });
    }
    const parsed = parseAccountKeys(text, ref.spec);
    if ("error" in parsed)
      throw new HeroError("account-keys", `${where}: ${ref.url}: ${parsed.error}`, {
        file: ref.file,
        field: ref.field,
      });
    out.set(ref.spec, parsed.keys);
  }
  return out;
}
