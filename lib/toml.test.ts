import { describe, expect, test } from "bun:test";
import { type HeroError, isHeroError } from "./errors.ts";
import { parseToml } from "./toml.ts";

function thrown(fn: () => unknown): HeroError {
  try {
    fn();
  } catch (e) {
    if (isHeroError(e, "input")) return e;
    throw e;
  }
  throw new Error("no error thrown");
}

describe("parseToml bounds TOML from outside", () => {
  test("ordinary documents parse", () => {
    expect(parseToml('hostname = "a"\n[env]\nA = "1"\n', "vm.toml")).toEqual({
      hostname: "a",
      env: { A: "1" },
    });
  });

  test("a text over the limit is refused before parsing", () => {
    const e = thrown(() =>
      parseToml(`a = "${"x".repeat(100)}"`, "m.toml", { maxBytes: 64, maxDepth: 8 }),
    );
    expect(e.code).toBe("size");
    expect(e.message).toMatch(/limit 64/);
  });

  test("deep arrays are refused with the field, before any recursive reader sees them", () => {
    const e = thrown(() =>
      parseToml(`[env]\nA = ${"[".repeat(50_000)}${"]".repeat(50_000)}\n`, "vm.toml"),
    );
    expect(e.message).toMatch(/nested more than 32 levels/);
    expect(e.where).toMatchObject({ file: "vm.toml", line: 2 });
  });

  test("__proto__, constructor and prototype keys are refused, never dropped", () => {
    for (const k of ["__proto__", "constructor", "prototype"]) {
      const e = thrown(() => parseToml(`[env]\nA = "1"\n${k} = "x"\n`, "vm.toml"));
      expect(e.code).toBe("reserved");
      expect(e.where).toMatchObject({ line: 3, field: `env.${k}` });
    }
  });
});
