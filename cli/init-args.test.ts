import { describe, expect, test } from "bun:test";
import { isInitCommand } from "./init-args.ts";

describe("isInitCommand (what PID 1 of a pid namespace runs)", () => {
  test("init after zinit's global options: the supervisor only", () => {
    for (const args of [
      ["init"],
      ["init", "-c", "/etc/zinit", "--container"],
      ["-s", "/run/z.sock", "init", "-c", "/d"],
      ["--socket", "init", "init"],
      ["-d", "-s", "x", "init"],
      ["--json", "--socket=/x", "init"],
    ])
      expect({ args, init: isInitCommand(args) }).toEqual({ args, init: true });
  });

  test("anything else (the kernel's arguments, no arguments): the machine boot", () => {
    for (const args of [[], ["list"], ["-s", "init"], ["--", "init"], ["quiet", "init"], ["-d"]])
      expect({ args, init: isInitCommand(args) }).toEqual({ args, init: false });
  });
});
