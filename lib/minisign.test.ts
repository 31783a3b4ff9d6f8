import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  formatPublicKey,
  formatSecretKey,
  generateKey,
  keyIdHex,
  parsePublicKey,
  parseSecretKey,
  signMessage,
  verifyMessage,
} from "./minisign.ts";

const msg = new TextEncoder().encode("version = 7\n[vm]\nbinaries = []\n");

describe("minisign format (pure)", () => {
  test("sign → verify; key files round-trip", () => {
    const k = generateKey();
    const sk = parseSecretKey(formatSecretKey(k));
    expect(Buffer.from(sk.seed).equals(Buffer.from(k.seed))).toBe(true);
    const pub = parsePublicKey(formatPublicKey(k));
    const sig = signMessage(sk, msg, "timestamp:1\tfile:bootstrapper.toml");
    const v = verifyMessage(msg, sig, [pub]);
    expect(v).toEqual({
      keyId: keyIdHex(k.keyId),
      trustedComment: "timestamp:1\tfile:bootstrapper.toml",
      prehashed: true,
    });
  });

  test("a flipped bit anywhere is refused: message, signature, trusted comment", () => {
    const k = generateKey();
    const sig = signMessage(k, msg, "c");
    for (let i = 0; i < msg.length; i += 7) {
      const m = msg.slice();
      m[i] = (m[i] as number) ^ 1;
      expect(() => verifyMessage(m, sig, [k])).toThrow(/bad signature/);
    }
    const lines = sig.split("\n");
    const raw = Buffer.from(lines[1] as string, "base64");
    raw[20] = (raw[20] as number) ^ 1;
    const badSig = [lines[0], raw.toString("base64"), ...lines.slice(2)].join("\n");
    expect(() => verifyMessage(msg, badSig, [k])).toThrow(/bad signature/);
    const badTc = sig.replace("trusted comment: c", "trusted comment: d");
    expect(() => verifyMessage(msg, badTc, [k])).toThrow(/trusted comment/);
  });

  test("wrong key: named by id; malformed files: named by line", () => {
    const k = generateKey();
    const other = generateKey();
    const sig = signMessage(k, msg, "c");
    expect(() => verifyMessage(msg, sig, [other])).toThrow(`signed by key ${keyIdHex(k.keyId)}`);
    expect(() => verifyMessage(msg, "garbage", [k])).toThrow(/line 1/);
    expect(() => verifyMessage(msg, sig.replace(/^trusted comment: /m, "x: "), [k])).toThrow(
      /line 3/,
    );
    expect(() => verifyMessage(msg, sig.split("\n").slice(0, 1).join("\n"), [k])).toThrow(
      expect.objectContaining({ code: "signature.malformed" }),
    );
    expect(() => parsePublicKey("untrusted comment: x\nAAAA")).toThrow(/bytes, expected 42/);
  });

  test("encrypted secret keys are refused with what to do", () => {
    const k = formatSecretKey(generateKey()).split("\n");
    const raw = Buffer.from(k[1] as string, "base64");
    raw.write("Sc", 2, "latin1");
    expect(() => parseSecretKey(`${k[0]}\n${raw.toString("base64")}\n`)).toThrow(/encrypted/);
  });
});

const haveMinisign = Bun.spawnSync(["sh", "-c", "command -v minisign"]).exitCode === 0;

describe.skipIf(!haveMinisign)("interoperability with Debian's minisign", () => {
  const run = (args: string[], cwd: string) =>
    Bun.spawnSync(["minisign", ...args], { cwd, stdout: "pipe", stderr: "pipe", stdin: "ignore" });

  test("minisign -V verifies what hero-init signs, and refuses a changed byte", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-minisign-"));
    try {
      const k = generateKey();
      writeFileSync(join(dir, "m.pub"), formatPublicKey(k));
      writeFileSync(join(dir, "f.toml"), msg);
      writeFileSync(join(dir, "f.toml.minisig"), signMessage(k, msg, "timestamp:1 file:f.toml"));
      const ok = run(["-V", "-p", "m.pub", "-m", "f.toml"], dir);
      expect(ok.stderr.toString()).toBe("");
      expect(ok.exitCode).toBe(0);
      expect(ok.stdout.toString()).toContain("timestamp:1 file:f.toml");
      writeFileSync(join(dir, "f.toml"), Buffer.concat([msg, Buffer.from(" ")]));
      expect(run(["-V", "-p", "m.pub", "-m", "f.toml"], dir).exitCode).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("hero-init verifies what minisign signs (prehashed and legacy), and reads its keys", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-minisign-"));
    try {
      expect(run(["-G", "-W", "-p", "m.pub", "-s", "m.key"], dir).exitCode).toBe(0);
      writeFileSync(join(dir, "f.toml"), msg);
      expect(run(["-S", "-s", "m.key", "-m", "f.toml", "-t", "from minisign"], dir).exitCode).toBe(
        0,
      );
      const pub = parsePublicKey(readFileSync(join(dir, "m.pub"), "utf8"));
      const sig = readFileSync(join(dir, "f.toml.minisig"), "utf8");
      expect(verifyMessage(msg, sig, [pub])).toMatchObject({
        trustedComment: "from minisign",
        prehashed: true,
      });
      const changed = msg.slice();
      changed[0] = 0x56;
      expect(() => verifyMessage(changed, sig, [pub])).toThrow(/bad signature/);
      // minisign's own unencrypted secret key signs for hero-init too.
      const sk = parseSecretKey(readFileSync(join(dir, "m.key"), "utf8"));
      expect(verifyMessage(msg, signMessage(sk, msg, "x"), [pub]).keyId).toBe(keyIdHex(pub.keyId));
      // A key written by hero-init is accepted by minisign -S.
      const mine = generateKey();
      writeFileSync(join(dir, "h.key"), formatSecretKey(mine));
      writeFileSync(join(dir, "h.pub"), formatPublicKey(mine));
      expect(run(["-S", "-s", "h.key", "-m", "f.toml", "-x", "g.sig"], dir).exitCode).toBe(0);
      expect(verifyMessage(msg, readFileSync(join(dir, "g.sig"), "utf8"), [mine]).keyId).toBe(
        keyIdHex(mine.keyId),
      );
      expect(run(["-V", "-p", "h.pub", "-m", "f.toml", "-x", "g.sig"], dir).exitCode).toBe(0);
      // Legacy (non-prehashed) signatures.
      expect(run(["-S", "-l", "-s", "m.key", "-m", "f.toml", "-x", "l.sig"], dir).exitCode).toBe(0);
      expect(verifyMessage(msg, readFileSync(join(dir, "l.sig"), "utf8"), [pub]).prehashed).toBe(
        false,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
