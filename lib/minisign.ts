/**
 * Ed25519 signatures in minisign's file formats, so `minisign -V` verifies
 * what hero-init signs and hero-init verifies what minisign signs. Pure
 * apart from node:crypto's Ed25519 and Bun's BLAKE2b; no file I/O.
 *
 * Formats (minisign 0.11, checked against Debian's binary in the tests):
 * - public key: "untrusted comment: …\n" + base64("Ed" ‖ keyId[8] ‖ pk[32])
 * - secret key, unencrypted (`minisign -G -W`): base64("Ed" ‖ kdf "\0\0" ‖
 *   "B2" ‖ salt[32] ‖ ops[8] ‖ mem[8] ‖ keyId[8] ‖ seed‖pk [64] ‖ checksum[32]),
 *   checksum = BLAKE2b-256("Ed" ‖ keyId ‖ seed‖pk). Encrypted keys (scrypt)
 *   are refused with a clear message.
 * - signature: "untrusted comment: …\n" + base64(alg ‖ keyId ‖ sig[64]) +
 *   "\ntrusted comment: " + text + "\n" + base64(globalSig[64]) + "\n";
 *   alg "ED" signs BLAKE2b-512(message) (the default), legacy "Ed" signs the
 *   message itself; globalSig signs sig ‖ trusted-comment bytes.
 *
 * Verification works on the exact bytes given: never a re-serialisation.
 */
import { createPrivateKey, createPublicKey, sign as edSign, verify as edVerify } from "node:crypto";
import { HeroError } from "./errors.ts";

/**
 * A key or signature that is malformed, encrypted, signed by an
 * untrusted-key, or bad (does not verify): code "signature.<kind>", the
 * file's line (1-based) in the message and in `where`.
 */
function signatureError(
  kind: "malformed" | "encrypted" | "untrusted-key" | "bad",
  message: string,
  line?: number,
): HeroError {
  return new HeroError(
    `signature.${kind}`,
    line ? `line ${line}: ${message}` : message,
    line ? { line } : {},
  );
}

/** A public key: 8-byte id and 32-byte Ed25519 key. */
export interface PublicKey {
  keyId: Uint8Array;
  pk: Uint8Array;
}

/** A secret key: id, 32-byte seed and its public key. */
export interface SecretKey extends PublicKey {
  seed: Uint8Array;
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

function blake2b(bytes: Uint8Array, bits: 256 | 512): Uint8Array {
  return new Bun.CryptoHasher(bits === 256 ? "blake2b256" : "blake2b512").update(bytes).digest();
}

const concat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));
const eq = (a: Uint8Array, b: Uint8Array) => Buffer.from(a).equals(Buffer.from(b));

/** minisign's display form of a key id: the 8 bytes as a little-endian number, upper-case hex. */
export function keyIdHex(keyId: Uint8Array): string {
  return Buffer.from(keyId).reverse().toString("hex").toUpperCase();
}

/** A new key pair (random seed and key id). */
export function generateKey(): SecretKey {
  const seed = crypto.getRandomValues(new Uint8Array(32));
  const keyId = crypto.getRandomValues(new Uint8Array(8));
  return { seed, keyId, pk: publicFromSeed(seed) };
}

function publicFromSeed(seed: Uint8Array): Uint8Array {
  const priv = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  const der = createPublicKey(priv).export({ format: "der", type: "spki" });
  return new Uint8Array(der.subarray(der.length - 32));
}

function ed25519Sign(seed: Uint8Array, msg: Uint8Array): Uint8Array {
  const key = createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]),
    format: "der",
    type: "pkcs8",
  });
  return new Uint8Array(edSign(null, msg, key));
}

function ed25519Verify(pk: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  const key = createPublicKey({
    key: Buffer.concat([SPKI_PREFIX, pk]),
    format: "der",
    type: "spki",
  });
  return edVerify(null, msg, key, sig);
}

/** Splits a minisign file into its lines; checks the "untrusted comment:" header. */
function lines(text: string, what: string): string[] {
  const ls = text.replace(/\r\n/g, "\n").split("\n");
  if (!ls[0]?.startsWith("untrusted comment:"))
    throw signatureError("malformed", `${what}: expected "untrusted comment:"`, 1);
  return ls;
}

function b64(line: string | undefined, n: number, what: string, lineNo: number): Uint8Array {
  if (line === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(line.trim()))
    throw signatureError("malformed", `${what}: expected base64`, lineNo);
  const bytes = new Uint8Array(Buffer.from(line.trim(), "base64"));
  if (bytes.length !== n)
    throw signatureError("malformed", `${what}: ${bytes.length} bytes, expected ${n}`, lineNo);
  return bytes;
}

/** Public key file text. */
export function formatPublicKey(k: PublicKey): string {
  const blob = concat(enc.encode("Ed"), k.keyId, k.pk);
  return `untrusted comment: minisign public key ${keyIdHex(k.keyId)}\n${Buffer.from(blob).toString("base64")}\n`;
}

/** Parses a public key file, or the bare base64 line (`minisign -P`). */
export function parsePublicKey(text: string): PublicKey {
  const t = text.trim();
  const line = t.startsWith("untrusted comment:") ? lines(t, "public key")[1] : t;
  const bytes = b64(line, 42, "public key", t.startsWith("untrusted") ? 2 : 1);
  if (dec.decode(bytes.subarray(0, 2)) !== "Ed")
    throw signatureError("malformed", 'public key: algorithm is not "Ed"');
  return { keyId: bytes.slice(2, 10), pk: bytes.slice(10, 42) };
}

/** Unencrypted secret key file text (minisign -W compatible). */
export function formatSecretKey(k: SecretKey): string {
  const sk = concat(k.seed, k.pk);
  const checksum = blake2b(concat(enc.encode("Ed"), k.keyId, sk), 256);
  const blob = concat(
    enc.encode("Ed"),
    new Uint8Array(2),
    enc.encode("B2"),
    new Uint8Array(32 + 8 + 8),
    k.keyId,
    sk,
    checksum,
  );
  return `untrusted comment: minisign secret key (unencrypted) ${keyIdHex(k.keyId)}\n${Buffer.from(blob).toString("base64")}\n`;
}

/** Parses an unencrypted secret key; refuses encrypted ones with a clear message. */
export function parseSecretKey(text: string): SecretKey {
  const ls = lines(text.trim(), "secret key");
  const bytes = b64(ls[1], 158, "secret key", 2);
  if (dec.decode(bytes.subarray(0, 2)) !== "Ed")
    throw signatureError("malformed", 'secret key: algorithm is not "Ed"', 2);
  const kdf = bytes.subarray(2, 4);
  if (kdf[0] !== 0 || kdf[1] !== 0)
    throw signatureError(
      "encrypted",
      "secret key is password-encrypted (scrypt): decrypt it or create one with `minisign -G -W` / `hero-init manifest keygen`",
      2,
    );
  const keyId = bytes.slice(54, 62);
  const sk = bytes.slice(62, 126);
  const checksum = bytes.subarray(126, 158);
  const expected = blake2b(concat(enc.encode("Ed"), keyId, sk), 256);
  // minisign 0.11 leaves the checksum zero in unencrypted keys; a non-zero one must match.
  if (checksum.some((b) => b !== 0) && !eq(checksum, expected))
    throw signatureError("malformed", "secret key: checksum mismatch (damaged file?)", 2);
  const seed = sk.slice(0, 32);
  const pk = sk.slice(32, 64);
  if (!eq(publicFromSeed(seed), pk))
    throw signatureError("malformed", "secret key: seed and public key disagree", 2);
  return { keyId, seed, pk };
}

/** Signs `message`, prehashed ("ED") like minisign's default; returns the .minisig text. */
export function signMessage(k: SecretKey, message: Uint8Array, trustedComment: string): string {
  if (/[\r\n]/.test(trustedComment))
    throw signatureError("malformed", "trusted comment must be one line");
  const sig = ed25519Sign(k.seed, blake2b(message, 512));
  const global = ed25519Sign(k.seed, concat(sig, enc.encode(trustedComment)));
  const blob = concat(enc.encode("ED"), k.keyId, sig);
  return (
    `untrusted comment: signature from hero-init secret key\n` +
    `${Buffer.from(blob).toString("base64")}\n` +
    `trusted comment: ${trustedComment}\n` +
    `${Buffer.from(global).toString("base64")}\n`
  );
}

/** A verified signature's facts. */
export interface Verified {
  keyId: string;
  trustedComment: string;
  prehashed: boolean;
}

/** The key id (hex) a .minisig text claims to be signed by; throws "signature.malformed" if malformed. */
export function signatureKeyId(sigText: string): string {
  const blob = b64(lines(sigText, "signature")[1], 74, "signature", 2);
  return keyIdHex(blob.subarray(2, 10));
}

/**
 * Verifies `message` (the exact bytes fetched) against a .minisig text and
 * one of the trusted keys. Throws a "signature.*" HeroError naming what is wrong:
 * malformed file (with its line), unknown key id, bad signature, bad
 * trusted-comment signature.
 */
export function verifyMessage(message: Uint8Array, sigText: string, keys: PublicKey[]): Verified {
  const ls = lines(sigText, "signature");
  const blob = b64(ls[1], 74, "signature", 2);
  const alg = dec.decode(blob.subarray(0, 2));
  if (alg !== "ED" && alg !== "Ed")
    throw signatureError("malformed", `signature: unknown algorithm "${alg}"`, 2);
  const keyId = blob.subarray(2, 10);
  const sig = blob.subarray(10, 74);
  const tc = ls[2];
  if (!tc?.startsWith("trusted comment: "))
    throw signatureError("malformed", 'signature: expected "trusted comment: "', 3);
  const trustedComment = tc.slice("trusted comment: ".length);
  const global = b64(ls[3], 64, "signature (trusted comment)", 4);
  const key = keys.find((k) => eq(k.keyId, keyId));
  if (!key)
    throw signatureError(
      "untrusted-key",
      `signed by key ${keyIdHex(keyId)}, which is not trusted (trusted: ${keys.map((k) => keyIdHex(k.keyId)).join(", ") || "none"})`,
    );
  const signed = alg === "ED" ? blake2b(message, 512) : message;
  if (!ed25519Verify(key.pk, signed, sig))
    throw signatureError("bad", `bad signature (key ${keyIdHex(keyId)}): the content was changed`);
  if (!ed25519Verify(key.pk, concat(sig, enc.encode(trustedComment)), global))
    throw signatureError("bad", "bad signature on the trusted comment: it was changed", 3);
  return { keyId: keyIdHex(keyId), trustedComment, prehashed: alg === "ED" };
}
