import { describe, expect, test } from "bun:test";
import { type HeroError, isHeroError } from "../../lib/errors.ts";
import { type ParamSpecs, parseParams } from "./params.ts";

const NAME = { type: "string", required: true, description: "" } as const;
const OPTIONAL = { type: "string", required: false, description: "" } as const;
const CONTENT = { type: "object", required: true, description: "" } as const;
const KILL: ParamSpecs = { name: NAME, signal: NAME };

/** The -32602 data text `params` gets (and that the error is jsonrpsee's Invalid params). */
function refusal(params: unknown, specs: ParamSpecs): unknown {
  try {
    parseParams(params, specs);
  } catch (e) {
    expect(isHeroError(e, "control")).toBe(true);
    expect([(e as HeroError).detail.rpcCode, (e as Error).message]).toEqual([
      -32602,
      "Invalid params",
    ]);
    return (e as HeroError).detail.rpcData;
  }
  throw new Error("no error");
}

describe("parseParams (jsonrpsee's reading)", () => {
  test("by position or by name; extra parameters ignored; null or absent optional is none", () => {
    expect(parseParams(["web", "SIGHUP", "extra"], KILL)).toEqual({
      name: "web",
      signal: "SIGHUP",
    });
    expect(parseParams({ signal: "SIGINT", name: "db", x: 1 }, KILL)).toEqual({
      name: "db",
      signal: "SIGINT",
    });
    expect(parseParams([], { name: OPTIONAL })).toEqual({});
    expect(parseParams(null, { name: OPTIONAL })).toEqual({});
    expect(parseParams([null], { name: OPTIONAL })).toEqual({});
    expect(parseParams({ name: null }, { name: OPTIONAL })).toEqual({});
    expect(parseParams(["n", { exec: "x" }], { name: NAME, content: CONTENT })).toEqual({
      name: "n",
      content: { exec: "x" },
    });
    // A method without parameters takes anything.
    expect(parseParams("whatever", {})).toEqual({});
  });

  test("serde's texts for what is missing or of the wrong type", () => {
    expect(refusal([], { name: NAME })).toBe("No more params");
    expect(refusal(undefined, { name: NAME })).toBe("No more params");
    expect(refusal(["web"], KILL)).toBe("No more params");
    expect(refusal([5], { name: NAME })).toBe(
      "invalid type: integer `5`, expected a string at line 1 column 1",
    );
    expect(refusal([null], { name: NAME })).toBe(
      "invalid type: null, expected a string at line 1 column 4",
    );
    expect(refusal(["web", true], KILL)).toBe(
      "invalid type: boolean `true`, expected a string at line 1 column 4",
    );
    expect(refusal([1.5], { name: OPTIONAL })).toBe(
      "invalid type: floating point `1.5`, expected a string at line 1 column 3",
    );
    expect(refusal(["n", ["x"]], { name: NAME, content: CONTENT })).toBe(
      "invalid type: sequence, expected a map at line 1 column 1",
    );
    expect(refusal({}, KILL)).toBe("missing field `name` at line 1 column 2");
    expect(refusal({ name: "web" }, KILL)).toBe("missing field `signal` at line 1 column 14");
    expect(refusal({ name: 5 }, KILL)).toBe(
      "invalid type: integer `5`, expected a string at line 1 column 9",
    );
    expect(refusal("web", { name: NAME })).toBe(
      "Invalid params. Expected one of '[', ']' or ',' but found \"\\\"web\\\"\"",
    );
  });
});
