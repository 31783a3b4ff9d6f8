import { describe, expect, test } from "bun:test";
import { sockaddrUn } from "./ffi.ts";

describe("sockaddrUn", () => {
  test("family AF_UNIX (1), then the path and its NUL", () => {
    const b = sockaddrUn("/run/x.sock");
    expect([...b.subarray(0, 2)]).toEqual([1, 0]);
    expect(Buffer.from(b.subarray(2)).toString()).toBe("/run/x.sock\0");
  });
  test("an empty, too long or NUL-holding path is refused", () => {
    expect(sockaddrUn(`/${"a".repeat(106)}`).length).toBe(2 + 107 + 1);
    for (const bad of ["", `/${"a".repeat(107)}`, "/a\0b"])
      expect(() => sockaddrUn(bad)).toThrow("unix socket path");
  });
});
