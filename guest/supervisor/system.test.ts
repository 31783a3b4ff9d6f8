import { describe, expect, test } from "bun:test";
import { parseEnvironment } from "./system.ts";

describe("/etc/environment", () => {
  test("assignments, with export, quotes, comments and blank lines", () => {
    const text = [
      "# a comment",
      "",
      "LANG=C.UTF-8",
      "export EDITOR=vi",
      '  GREETING="hello world"  ',
      "SINGLE='x y'",
      "MIXED=\"a'",
      "EQ=a=b",
      "=nokey",
      "NOEQ",
    ].join("\n");
    expect(parseEnvironment(text)).toEqual({
      LANG: "C.UTF-8",
      EDITOR: "vi",
      GREETING: "hello world",
      SINGLE: "x y",
      MIXED: "\"a'",
      EQ: "a=b",
    });
  });
});
