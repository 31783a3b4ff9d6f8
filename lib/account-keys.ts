/**
 * Keys "fetched from named accounts" (seed 002: dev has "Full SSH (GitHub
 * keys)"), resolved on the publisher's side. A user of an access file in
 * the publisher directory may say
 *
 *     keys_from = ["github:alice", "gitlab:bob", "https://git.example.org/carol.keys"]
 *
 * and `hero-init manifest build` fetches those lists once and writes the
 * keys inline into the manifest, each with the account as its comment, so
 * they are signed with it. A machine never fetches a key: what it applies
 * is in the signed bytes (docs/environments.md). The pure part is here
 * (names, URLs, the body of a key list); the fetch is update/account-keys.ts.
 *
 * The format is the one GitHub serves at https://github.com/NAME.keys (and
 * GitLab, Gitea and Forgejo at /NAME.keys): one `type base64` per line, no
 * options, no comment; an empty body for an account without keys; 404 for
 * no such account.
 */
import { keyIdentity, sshKeyProblem } from "./access.ts";

/** Short forms and the URL each stands for. */
const HOSTS: Record<string, string> = {
  github: "https://github.com",
  gitlab: "https://gitlab.com",
};

/** Account names as GitHub and GitLab allow them: no "/", "..", or URL syntax. */
const ACCOUNT_RE = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9_])?$/;

/** At most this many keys per account: a list is a person's keys, not a dump. */
export const MAX_KEYS_PER_ACCOUNT = 64;

/** The body cap for one account's list (64 KiB: far above 64 RSA-4096 keys). */
export const MAX_ACCOUNT_KEYS_BYTES = 64 * 1024;

/**
 * Pure: the URL of an account's key list, or the reason it is not one.
 * `github:NAME`, `gitlab:NAME`, or an `https://` URL (plain `http://` only
 * for a loopback host: a test server on the publisher's machine).
 */
export function accountKeysUrl(spec: string): { url: string } | { error: string } {
  const m = /^([a-z]+):(.*)$/.exec(spec);
  const base = m ? HOSTS[m[1] as string] : undefined;
  if (m && base !== undefined) {
    const name = m[2] as string;
    if (!ACCOUNT_RE.test(name) || name.includes(".."))
      return { error: `"${name}" is not an account name (letters, digits, "_", ".", "-")` };
    return { url: `${base}/${name}.keys` };
  }
  let u: URL;
  try {
    u = new URL(spec);
  } catch {
    return { error: "must be github:NAME, gitlab:NAME or an https:// URL of a key list" };
  }
  const loopback =
    u.hostname === "127.0.0.1" || u.hostname === "localhost" || u.hostname === "[::1]";
  if (u.protocol !== "https:" && !(u.protocol === "http:" && loopback))
    return { error: "must be an https:// URL (plain http only on loopback)" };
  if (u.username || u.password || u.search || u.hash || spec.length > 512 || /\s/.test(spec))
    return {
      error:
        "must be a plain URL: no credentials, query, fragment or spaces, at most 512 characters",
    };
  return { url: u.href };
}

/**
 * Pure: the authorized_keys lines of one account's list, each with the
 * account as its comment (what an operator reads in the manifest and in
 * authorized_keys). Blank lines are skipped; any other line must be a bare
 * `type base64 [comment]` key (the account's own comment is replaced).
 * Throws nothing: returns the keys, or the first problem with its line.
 */
export function parseAccountKeys(
  body: string,
  spec: string,
): { keys: string[] } | { error: string } {
  const keys: string[] = [];
  const seen = new Set<string>();
  const lines = body.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = (lines[i] as string).replace(/\r$/, "").trim();
    if (!raw) continue;
    const words = raw.split(/ +/);
    const bare = words.slice(0, 2).join(" ");
    const problem = words.length < 2 ? "is not `type base64`" : sshKeyProblem(bare);
    if (problem) return { error: `line ${i + 1}: the key ${problem}` };
    const line = `${bare} ${spec}`;
    const p2 = sshKeyProblem(line);
    if (p2) return { error: `line ${i + 1}: the key with its comment ${p2}` };
    if (seen.has(keyIdentity(line))) continue;
    seen.add(keyIdentity(line));
    keys.push(line);
    if (keys.length > MAX_KEYS_PER_ACCOUNT)
      return { error: `more than ${MAX_KEYS_PER_ACCOUNT} keys` };
  }
  if (keys.length === 0) return { error: "lists no key (a typo in the name, or no key uploaded)" };
  return { keys };
}

/**
 * Pure: a user table of an access file with `keys_from` resolved: the
 * fetched keys appended to `keys` (a key already listed inline is not
 * repeated), `keys_from` removed. `fetched` maps each spec to its keys.
 */
export function withAccountKeys(
  user: Record<string, unknown>,
  fetched: ReadonlyMap<string, string[]>,
): Record<string, unknown> {
  const { keys_from, ...rest } = user;
  if (keys_from === undefined) return user;
  const keys = Array.isArray(rest.keys) ? [...(rest.keys as unknown[])] : [];
  const have = new Set(keys.map((k) => (typeof k === "string" ? keyIdentity(k) : k)));
  for (const spec of keys_from as string[])
    for (const k of fetched.get(spec) ?? []) {
      if (have.has(keyIdentity(k))) continue;
      have.add(keyIdentity(k));
      keys.push(k);
    }
  return { ...rest, keys };
}
