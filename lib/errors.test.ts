import { describe, expect, test } from "bun:test";
import { HeroError, isHeroError, shortCode } from "./errors.ts";

describe("HeroError.toString", () => {
  test("an input error: file:line:col: field: message, omitting what is unknown", () => {
    const where = { file: "vm.toml", line: 3, column: 7, field: "[vm].name" };
    expect(String(new HeroError("schema", "must be a string", where))).toBe(
      "vm.toml:3:7: [vm].name: must be a string",
    );
    expect(String(new HeroError("toml-syntax", "bad", { file: "a.toml", line: 2 }))).toBe(
      "a.toml:2: bad",
    );
    expect(String(new HeroError("usage", "--x needs a value", { field: "--x" }))).toBe(
      "--x: --x needs a value",
    );
    expect(String(new HeroError("read", "cannot read"))).toBe("cannot read");
    expect(String(new HeroError("input.schema", "x", { file: "f" }))).toBe("f: x");
  });

  test("other kinds print as any Error (their message says where)", () => {
    expect(String(new HeroError("sys.ENOENT", "open(x): ENOENT"))).toBe("Error: open(x): ENOENT");
    expect(String(new HeroError("signature.malformed", "line 2: bad", { line: 2 }))).toBe(
      "Error: line 2: bad",
    );
  });

  test("an Error: message, stack, and the name every thrown error has had", () => {
    const e = new HeroError("cpio.truncated", "truncated header at offset 0");
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("Error");
    expect(e.message).toBe("truncated header at offset 0");
    expect(e.stack).toContain("truncated header at offset 0");
  });
});

describe("isHeroError", () => {
  const sys = new HeroError("sys.ENOENT", "m");
  const input = new HeroError("schema", "m");

  test("a kind matches its codes, a code itself; never a longer name with the same start", () => {
    expect(isHeroError(sys, "sys")).toBe(true);
    expect(isHeroError(sys, "sys.ENOENT")).toBe(true);
    expect(isHeroError(sys, "sys.ENO")).toBe(false);
    expect(isHeroError(sys, "sy")).toBe(false);
    expect(isHeroError(sys, "sys.EEXIST")).toBe(false);
    expect(isHeroError(new HeroError("system.x", "m"), "sys")).toBe(false);
    expect(isHeroError(new HeroError("supervisor.not-found", "m"), "supervisor")).toBe(true);
  });

  test("a bare code is an input error: 'input' and 'input.<code>' match it", () => {
    expect(isHeroError(input, "input")).toBe(true);
    expect(isHeroError(input, "input.schema")).toBe(true);
    expect(isHeroError(input, "input.size")).toBe(false);
    expect(isHeroError(input, "schema")).toBe(false);
    expect(isHeroError(sys, "input")).toBe(false);
    expect(isHeroError(new HeroError("input.usage", "m"), "input")).toBe(true);
  });

  test("without a prefix: any HeroError; never another error", () => {
    expect(isHeroError(sys)).toBe(true);
    expect(isHeroError(input)).toBe(true);
    const plain = Object.assign(new Error("m"), { code: "sys.ENOENT" });
    expect(isHeroError(plain)).toBe(false);
    expect(isHeroError(plain, "sys")).toBe(false);
    expect(isHeroError({ code: "schema", message: "m" }, "input")).toBe(false);
    expect(isHeroError(undefined)).toBe(false);
    expect(isHeroError("sys.ENOENT", "sys")).toBe(false);
  });
});

describe("where and detail", () => {
  test("carried as given; empty when not given", () => {
    const e = new HeroError(
      "download.http-status",
      "u: HTTP 503",
      {},
      { url: "u", status: 503, retryable: true, retryAfterMs: 3000 },
    );
    expect(e.detail).toEqual({ url: "u", status: 503, retryable: true, retryAfterMs: 3000 });
    expect(e.where).toEqual({});
    const bare = new HeroError("schema", "m", { file: "f", line: 1 });
    expect(bare.where).toEqual({ file: "f", line: 1 });
    expect(bare.detail).toEqual({});
  });
});

describe("shortCode", () => {
  test("the code without its kind; a bare code stays; only the first dot splits", () => {
    expect(shortCode("sys.ENOENT")).toBe("ENOENT");
    expect(shortCode("trust.rollback")).toBe("rollback");
    expect(shortCode("schema")).toBe("schema");
    expect(shortCode("a.b.c")).toBe("b.c");
  });
});
