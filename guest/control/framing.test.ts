import { describe, expect, test } from "bun:test";
import { MAX_REQUEST, splitLines, TOO_LONG_LINE } from "./framing.ts";

describe("splitLines", () => {
  test("whole lines without their \\n or \\r\\n, blank ones skipped, the unfinished rest kept", () => {
    expect(splitLines("list\r\n\n  \nstatus web\nsta")).toEqual({
      lines: ["list", "status web"],
      rest: "sta",
    });
    expect(splitLines("no newline yet")).toEqual({ lines: [], rest: "no newline yet" });
    expect(splitLines("a\n")).toEqual({ lines: ["a"], rest: "" });
    // Only a \r right before the newline goes; spaces stay (the protocols trim them).
    expect(splitLines(" a\r\r\n")).toEqual({ lines: [" a\r"], rest: "" });
  });

  test("the too-long answer is one legacy error line naming the limit", () => {
    expect(JSON.parse(TOO_LONG_LINE)).toEqual({
      state: "error",
      body: `request longer than ${MAX_REQUEST} bytes`,
    });
    expect(TOO_LONG_LINE.endsWith("}\n")).toBe(true);
  });
});
