import { describe, expect, test } from "bun:test";
import { bareKey, fakeKey } from "../test/helpers/ssh-keys.ts";
import {
  accountKeysUrl,
  MAX_KEYS_PER_ACCOUNT,
  parseAccountKeys,
  withAccountKeys,
} from "./account-keys.ts";

describe("accountKeysUrl", () => {
  test("short forms and URLs", () => {
    expect(accountKeysUrl("github:alice")).toEqual({ url: "https://github.com/alice.keys" });
    expect(accountKeysUrl("gitlab:bob.smith")).toEqual({
      url: "https://gitlab.com/bob.smith.keys",
    });
    expect(accountKeysUrl("https://git.example.org/carol.keys")).toEqual({
      url: "https://git.example.org/carol.keys",
    });
    expect(accountKeysUrl("http://127.0.0.1:8080/alice.keys")).toEqual({
      url: "http://127.0.0.1:8080/alice.keys",
    });
  });

  test("refused: names that are paths or URL syntax, plain http off loopback, credentials, queries", () => {
    for (const spec of [
      "github:../x",
      "github:a/b",
      "github:",
      "github:a..b",
      "github:-x",
      "github:a?b",
      "http://example.org/a.keys",
      "https://u:p@example.org/a.keys",
      "https://example.org/a.keys?x=1",
      "https://example.org/a.keys#x",
      "ftp://example.org/a.keys",
      "alice",
      `https://example.org/${"a".repeat(600)}`,
    ])
      expect(accountKeysUrl(spec)).toHaveProperty("error");
  });
});

describe("parseAccountKeys", () => {
  test("GitHub's format: one bare key a line; the account becomes each key's comment; blank lines, CRLF and repeats", () => {
    const body = `${bareKey(1)}\r\n\n${bareKey(2)} old-comment\n${bareKey(1)}\n`;
    expect(parseAccountKeys(body, "github:alice")).toEqual({
      keys: [`${bareKey(1)} github:alice`, `${bareKey(2)} github:alice`],
    });
  });

  test("a line with options, a non-key, no key at all or too many keys is refused with its line", () => {
    const opt = parseAccountKeys(`${bareKey(1)}\ncommand="curl x|sh" ${bareKey(2)}\n`, "github:a");
    expect(opt).toEqual({ error: expect.stringMatching(/^line 2: the key /) });
    expect(parseAccountKeys("<html>404</html>\n", "github:a")).toEqual({
      error: expect.stringMatching(/^line 1: the key /),
    });
    expect(parseAccountKeys("\n\n", "github:a")).toEqual({
      error: "lists no key (a typo in the name, or no key uploaded)",
    });
    const many = Array.from({ length: MAX_KEYS_PER_ACCOUNT + 1 }, (_, i) => bareKey(i + 1)).join(
      "\n",
    );
    expect(parseAccountKeys(many, "github:a")).toEqual({
      error: `more than ${MAX_KEYS_PER_ACCOUNT} keys`,
    });
  });
});

describe("withAccountKeys", () => {
  test("appends the fetched keys after the inline ones, once each, and drops keys_from", () => {
    const user = { name: "dev", keys: [fakeKey(1, "laptop")], keys_from: ["github:a", "gitlab:a"] };
    const fetched = new Map([
      ["github:a", [`${bareKey(1)} github:a`, `${bareKey(2)} github:a`]],
      ["gitlab:a", [`${bareKey(2)} gitlab:a`, `${bareKey(3)} gitlab:a`]],
    ]);
    expect(withAccountKeys(user, fetched)).toEqual({
      name: "dev",
      keys: [fakeKey(1, "laptop"), `${bareKey(2)} github:a`, `${bareKey(3)} gitlab:a`],
    });
    const plain = { name: "ops", keys: [fakeKey(4)] };
    expect(withAccountKeys(plain, fetched)).toBe(plain);
  });
});
