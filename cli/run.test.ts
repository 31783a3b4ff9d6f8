import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import type { ArgsDef } from "citty";
import { HeroError } from "../lib/errors.ts";
import {
  argsProblem,
  type Command,
  optionValues,
  plain,
  runData,
  runTree,
  subcommandIndex,
  usageError,
  wantsHelp,
} from "./run.ts";

const DEFS = {
  out: { type: "string", alias: "o" },
  "vm-config": { type: "string" },
  json: { type: "boolean" },
  format: { type: "enum", options: ["dir", "ext4"] },
  file: { type: "positional" },
  extra: { type: "positional", required: false },
} satisfies ArgsDef;

describe("argument checks (pure)", () => {
  test("the subcommand is the first positional; option values are skipped", () => {
    const defs = { socket: { type: "string", alias: "s" }, json: { type: "boolean" } } as const;
    expect(subcommandIndex(["-s", "/x.sock", "list"], defs)).toBe(2);
    expect(subcommandIndex(["--json", "list", "-s"], defs)).toBe(1);
    expect(subcommandIndex(["--socket=/x", "status", "web"], defs)).toBe(1);
    expect(subcommandIndex(["--json"], defs)).toBe(-1);
    expect(subcommandIndex(["--", "list"], defs)).toBe(-1);
  });

  test("--help and -h count before --, not after", () => {
    expect(wantsHelp(["keygen", "--help"])).toBe(true);
    expect(wantsHelp(["-h"])).toBe(true);
    expect(wantsHelp(["exec", "--", "ls", "--help"])).toBe(false);
    expect(wantsHelp(["helpful"])).toBe(false);
  });

  test("a repeatable option keeps every value, aliases included, none after --", () => {
    const defs = { socket: { type: "string", alias: "s" }, env: { type: "string" } } as const;
    expect(optionValues(["-s", "a", "--socket", "b", "--socket=c"], defs, "socket")).toEqual([
      "a",
      "b",
      "c",
    ]);
    expect(optionValues(["--env", "A=1", "--", "--env", "B=2"], defs, "env")).toEqual(["A=1"]);
  });

  test("good arguments pass, camelCase and --no- spellings included", () => {
    expect(argsProblem(["f", "--out", "x", "--json"], DEFS)).toBeNull();
    expect(argsProblem(["f", "extra", "-o", "x", "--vmConfig", "v"], DEFS)).toBeNull();
    expect(argsProblem(["f", "--no-json", "--format=ext4"], DEFS)).toBeNull();
    expect(argsProblem(["f", "--", "-x", "y", "z"], DEFS)).toBeNull();
  });

  test.each([
    [["f", "--bogus"], "unknown option --bogus"],
    [["f", "-z"], "unknown option -z"],
    [["f", "--no-out"], "unknown option --no-out"],
    [["f", "--out"], "--out needs a value"],
    [["f", "--format", "zip"], '--format must be one of dir, ext4 (got "zip")'],
    [["f", "g", "h"], 'unexpected argument "h"'],
    [[], "FILE is required"],
  ])("%j → %s", (args, message) => {
    expect(argsProblem(args, DEFS)).toBe(message);
  });

  test("a required option is named when missing", () => {
    expect(argsProblem([], { key: { type: "string", required: true } })).toBe("--key is required");
    expect(argsProblem([], { key: { type: "string", required: true, default: "k" } })).toBeNull();
  });

  test("colour escapes are removed", () => {
    expect(plain("\u001b[36mhero-init\u001b[39m x")).toBe("hero-init x");
  });
});

/** A small tree: root (usage errors exit 2) with a zinit-like group (exit 1) and lazy leaves. */
function tree() {
  const loaded: string[] = [];
  const seen: { args?: Record<string, unknown>; up?: Record<string, unknown> } = {};
  const leaf = (name: string, run: Command["run"], args: ArgsDef = {}): Command => ({
    meta: { name, description: `the ${name} command` },
    args,
    run,
  });
  const lazy = (name: string, cmd: Command) => async () => {
    loaded.push(name);
    return cmd;
  };
  const group: Command = {
    meta: { name: "svc", description: "services", usageExit: 1 },
    args: { socket: { type: "string", alias: "s" } },
    subCommands: {
      status: lazy(
        "status",
        leaf(
          "status",
          (ctx) => {
            seen.args = { service: ctx.args.service };
            seen.up = runData(ctx.data).up;
            return 3;
          },
          { service: { type: "positional", required: true } },
        ),
      ),
    },
  };
  const root: Command = {
    meta: { name: "tool", version: "9.9.9", description: "a tool" },
    args: { json: { type: "boolean" } },
    subCommands: {
      svc: lazy("svc", group),
      ok: lazy(
        "ok",
        leaf("ok", () => undefined),
      ),
      bad: lazy(
        "bad",
        leaf("bad", () => {
          throw new HeroError("schema", "no good", { file: "x.toml", line: 2 });
        }),
      ),
      boom: lazy(
        "boom",
        leaf("boom", () => {
          throw new Error("it broke");
        }),
      ),
      use: lazy(
        "use",
        leaf("use", () => {
          throw usageError("not like that", "--mode");
        }),
      ),
    },
  };
  return { root, loaded, seen };
}

describe("runTree", () => {
  let out = "";
  let err = "";
  const spies: { mockRestore(): void }[] = [];
  beforeEach(() => {
    out = "";
    err = "";
    spies.push(
      spyOn(process.stdout, "write").mockImplementation((s: unknown) => {
        out += String(s);
        return true;
      }),
      spyOn(process.stderr, "write").mockImplementation((s: unknown) => {
        err += String(s);
        return true;
      }),
    );
  });
  afterEach(() => {
    for (const s of spies.splice(0)) s.mockRestore();
  });

  test("runs only the command named: its result is the exit code; options above it reach it", async () => {
    const t = tree();
    expect(await runTree(t.root, ["--json", "svc", "-s", "/x", "status", "web"], ["tool"])).toBe(3);
    expect(t.loaded).toEqual(["svc", "status"]);
    expect(t.seen).toEqual({ args: { service: "web" }, up: { json: true, socket: "/x" } });
  });

  test("--help prints the usage of the command named, exit 0, without running it", async () => {
    const t = tree();
    expect(await runTree(t.root, ["svc", "status", "--help"], ["tool"])).toBe(0);
    expect(plain(out)).toContain("USAGE tool svc status [OPTIONS] <SERVICE>");
    expect(t.seen).toEqual({});
    expect(await runTree(t.root, ["svc", "-h"], ["tool"])).toBe(0);
    expect(plain(out)).toContain("USAGE tool svc [OPTIONS] status");
    expect(err).toBe("");
  });

  test("--version at the root prints meta.version", async () => {
    expect(await runTree(tree().root, ["--version"], ["tool"])).toBe(0);
    expect(out).toBe("9.9.9\n");
  });

  test("usage errors name the problem, show the synopsis and exit with the nearest usageExit", async () => {
    const t = tree();
    expect(await runTree(t.root, ["nope"], ["tool"])).toBe(2);
    expect(err).toContain(
      'tool: unknown command "nope"\nusage: tool [OPTIONS] svc|ok|bad|boom|use',
    );
    err = "";
    expect(await runTree(t.root, ["svc", "status"], ["tool"])).toBe(1);
    expect(err).toStartWith("tool svc status: SERVICE is required\nusage: tool svc status");
    err = "";
    expect(await runTree(t.root, ["svc"], ["tool"])).toBe(1);
    expect(err).toStartWith("tool svc: which command? (status)");
    err = "";
    expect(await runTree(t.root, ["--frob", "ok"], ["tool"])).toBe(2);
    expect(err).toStartWith("tool: unknown option --frob");
    err = "";
    expect(await runTree(t.root, ["ok", "--frob"], ["tool"])).toBe(2);
    expect(err).toStartWith("tool ok: unknown option --frob");
    err = "";
    expect(await runTree(t.root, ["use"], ["tool"])).toBe(2);
    expect(err).toStartWith("tool use: --mode: not like that\nusage: ");
    expect(out).toBe("");
  });

  test("errors escaping a command: bad input exits 2, anything else 1", async () => {
    const t = tree();
    expect(await runTree(t.root, ["ok"], ["tool"])).toBe(0);
    expect(await runTree(t.root, ["bad"], ["tool"])).toBe(2);
    expect(err).toBe("tool bad: x.toml:2: no good\n");
    err = "";
    expect(await runTree(t.root, ["boom"], ["tool"])).toBe(1);
    expect(err).toBe("tool boom: it broke\n");
  });
});
