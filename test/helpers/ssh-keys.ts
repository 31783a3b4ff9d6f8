/**
 * Test-only SSH public keys: a well-formed ed25519 authorized_keys line
 * whose 32 key bytes are `seed` repeated (enough for every parser; no
 * private key exists). VM tests that log in use ssh-keygen instead.
 */
export function fakeKey(seed: number, comment = `k${seed}`): string {
  const t = Buffer.from("ssh-ed25519");
  const len = (n: number) => Buffer.from([0, 0, 0, n]);
  const blob = Buffer.concat([len(t.length), t, len(32), Buffer.alloc(32, seed)]);
  return `ssh-ed25519 ${blob.toString("base64")} ${comment}`;
}

/** The same key as a key list serves it (GitHub's /NAME.keys): `type base64`, no comment. */
export const bareKey = (seed: number) => fakeKey(seed).split(" ").slice(0, 2).join(" ");
