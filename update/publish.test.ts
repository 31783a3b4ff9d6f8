import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPublicKey, generateKey, parsePublicKey, verifyMessage } from "../lib/minisign.ts";
import { buildManifest, compareVersions, publishSigned } from "./publish.ts";

describe("compareVersions (pure)", () => {
  test("numeric parts compare as numbers", () => {
    expect(["1.9.2", "1.10.0", "1.2", "0.9"].sort(compareVersions)).toEqual([
      "0.9",
      "1.2",
      "1.9.2",
      "1.10.0",
    ]);
    expect(compareVersions("2.0", "2.0")).toBe(0);
  });
});

describe("buildManifest", () => {
  test("lists the highest version of each name with sha256, size and meta", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-pub-"));
    for (const v of ["1.9.0", "1.10.0"]) {
      mkdirSync(join(dir, "vm/tool", v), { recursive: true });
      writeFileSync(join(dir, "vm/tool", v, "tool"), `tool ${v}`);
    }
    writeFileSync(join(dir, "vm/tool/meta.toml"), 'services = ["tool"]\nrollout = 20\n');
    const text = buildManifest(dir, {
      baseUrl: "https://boot.example.org/",
      version: 7,
      expires: new Date("2030-01-01T00:00:00Z"),
    });
    expect(text).toContain('version = "1.10.0"');
    expect(text).toContain('url = "https://boot.example.org/vm/tool/1.10.0/tool"');
    expect(text).toContain("size = 11");
    expect(text).toContain("rollout = 20");
  });

  test("an unknown meta key names the file and the field", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-pub-"));
    mkdirSync(join(dir, "vm/tool/1.0"), { recursive: true });
    writeFileSync(join(dir, "vm/tool/1.0/tool"), "x");
    writeFileSync(join(dir, "vm/tool/meta.toml"), "servics = []\n");
    expect(() =>
      buildManifest(dir, { baseUrl: "http://x/", version: 1, expires: new Date(2030, 0) }),
    ).toThrow(/unknown key/);
  });
});

describe("publishSigned", () => {
  test("signature verifies, and each publication's mtime is a second past the last (nginx's ETag resolution)", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-pub-"));
    const key = generateKey();
    const pub = parsePublicKey(formatPublicKey(key));
    const path = join(dir, "bootstrapper.toml");
    const a = new TextEncoder().encode("version = 1\n");
    publishSigned(path, a, key, "one");
    const t1 = statSync(path).mtimeMs;
    const b = new TextEncoder().encode("version = 2\n");
    publishSigned(path, b, key, "two");
    const t2 = statSync(path).mtimeMs;
    expect(Math.floor(t2 / 1000)).toBeGreaterThan(Math.floor(t1 / 1000));
    expect(verifyMessage(b, readFileSync(`${path}.minisig`, "utf8"), [pub]).trustedComment).toBe(
      "two",
    );
  });
});
