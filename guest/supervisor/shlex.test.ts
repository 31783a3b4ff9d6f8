import { describe, expect, test } from "bun:test";
import { shellSplit } from "./shlex.ts";

describe("shellSplit", () => {
  test("plain words and runs of spaces", () => {
    expect(shellSplit("  redis-server  --port 7777 ")).toEqual(["redis-server", "--port", "7777"]);
  });
  test("quotes group and are removed; adjacent parts join", () => {
    expect(shellSplit(`sh -c 'echo "hi there"; exit 3' a"b c"d`)).toEqual([
      "sh",
      "-c",
      'echo "hi there"; exit 3',
      "ab cd",
    ]);
  });
  test("escapes", () => {
    expect(shellSplit(String.raw`echo a\ b "q\"x" 'no\escape'`)).toEqual([
      "echo",
      "a b",
      'q"x',
      "no\\escape",
    ]);
  });
  test("empty quotes make an empty argument", () => {
    expect(shellSplit(`prog "" ''`)).toEqual(["prog", "", ""]);
  });
  test("errors", () => {
    expect(() => shellSplit("sh -c 'oops")).toThrow("unterminated single quote at column 7");
    expect(() => shellSplit('echo "x')).toThrow("unterminated double quote");
    expect(() => shellSplit("echo \\")).toThrow("trailing backslash");
  });
});
