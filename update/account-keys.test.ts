import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHeroError } from "../lib/errors.ts";
import { parseManifest } from "../lib/manifest.ts";
import { bareKey, fakeKey } from "../test/helpers/ssh-keys.ts";
import { accountKeyRefs, fetchAccountKeys } from "./account-keys.ts";
import { buildManifest } from "./publish.ts";

/** A stand-in for github.com/NAME.keys: 200 with bare keys, an empty 200 for no keys, 404 otherwise. */
let server: ReturnType<typeof Bun.serve>;
const asked: string[] = [];
let dir: string;
beforeAll(() => {
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const path = new URL(req.url).pathname;
      asked.push(path);
      if (path === "/alice.keys") return new Response(`${bareKey(1)}\n${bareKey(2)}\n`);
      if (path === "/nokeys.keys") return new Response("");
      return new Response("Not Found", { status: 404 });
    },
  });
  dir = mkdtempSync(join(tmpdir(), "hero-acct-"));
});
afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

const url = (name: string) => `http://127.0.0.1:${server.port}/${name}.keys`;

function publisher(access: string): string {
  const d = mkdtempSync(join(dir, "pub-"));
  mkdirSync(join(d, "access"));
  writeFileSync(join(d, "access", "dev.toml"), access);
  return d;
}

describe("keys from named accounts, at build time", () => {
  test("fetched once per account, written inline with the account as comment, keys_from gone from the manifest", async () => {
    const d = publisher(
      `[[users]]\nname = "dev"\nkeys = [${JSON.stringify(fakeKey(9, "laptop"))}]\nkeys_from = ["${url("alice")}"]\n` +
        `[[users]]\nname = "dev2"\nkeys_from = ["${url("alice")}"]\n`,
    );
    const refs = accountKeyRefs(d);
    expect(refs.map((r) => [r.file, r.field])).toEqual([
      ["access/dev.toml", "users.0.keys_from.0"],
      ["access/dev.toml", "users.1.keys_from.0"],
    ]);
    asked.length = 0;
    const keys = await fetchAccountKeys(refs);
    expect(asked).toEqual(["/alice.keys"]);
    const text = buildManifest(d, {
      baseUrl: "http://x/",
      version: 1,
      expires: new Date(Date.now() + 86400_000),
      accountKeys: keys,
    });
    expect(text).not.toContain("keys_from");
    const users = parseManifest(text, "m").env.dev?.access?.users ?? [];
    expect(users.map((u) => u.keys)).toEqual([
      [fakeKey(9, "laptop"), `${bareKey(1)} ${url("alice")}`, `${bareKey(2)} ${url("alice")}`],
      [`${bareKey(1)} ${url("alice")}`, `${bareKey(2)} ${url("alice")}`],
    ]);
  });

  test("no such account (404) or an account without keys stops the build, naming file, field and account", async () => {
    for (const [name, why] of [
      ["nobody", /404/],
      ["nokeys", /lists no key/],
    ] as const) {
      const d = publisher(`[[users]]\nname = "dev"\nkeys_from = ["${url(name)}"]\n`);
      const err = await fetchAccountKeys(accountKeyRefs(d)).catch((e) => e);
      expect(isHeroError(err, "input.account-keys")).toBe(true);
      expect(err.message).toStartWith(`access/dev.toml: users.0.keys_from.0 (${url(name)}): `);
      expect(err.message).toMatch(why);
    }
  });

  test("a bad keys_from is named before anything is fetched; an unfetched one stops buildManifest", () => {
    const bad = publisher('[[users]]\nname = "dev"\nkeys_from = ["github:../etc"]\n');
    expect(() => accountKeyRefs(bad)).toThrow("access/dev.toml: users.0.keys_from.0:");
    const notList = publisher('[[users]]\nname = "dev"\nkeys_from = "github:alice"\n');
    expect(() => accountKeyRefs(notList)).toThrow("users.0.keys_from: must be a list");
    const d = publisher('[[users]]\nname = "dev"\nkeys_from = ["github:alice"]\n');
    expect(() =>
      buildManifest(d, {
        baseUrl: "http://x/",
        version: 1,
        expires: new Date(Date.now() + 86400_000),
      }),
    ).toThrow('access/dev.toml: users.0.keys_from: "github:alice" was not fetched');
    expect(readFileSync(join(d, "access", "dev.toml"), "utf8")).toContain("keys_from");
  });
});
