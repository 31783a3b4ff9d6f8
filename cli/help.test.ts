/**
 * Every command and subcommand answers --help with its usage and exit 0,
 * through the real entry (cli/main.ts, and the built dist/hero-init, also
 * as `zinit` by argv[0]). The list comes from the citty definitions, so a
 * new command is covered without touching this file. Also: --version, and
 * the lazy loading (`zinit list` and PID 1 never load host code).
 */
import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, normalize } from "node:path";
import { VERSION } from "../lib/version.ts";
import { heroInit, zinit } from "./index.ts";
import { type Command, resolve } from "./run.ts";

const ROOT = join(import.meta.dir, "..");
const MAIN = join(ROOT, "cli/main.ts");
const BIN = join(ROOT, "dist/hero-init");

/** Every command path below root (root itself as []), loading every command. */
async function paths(cmd: Command, path: string[] = []): Promise<string[][]> {
  const out = [path];
  const subs = (await resolve(cmd.subCommands)) ?? {};
  for (const [name, sub] of Object.entries(subs)) {
    const def = await resolve(sub);
    if (!def) throw new Error(`${[...path, name].join(" ")}: the definition did not load`);
    out.push(...(await paths(def, [...path, name])));
  }
  return out;
}

interface Result {
  code: number | null;
  out: string;
  err: string;
}

async function run(argv: string[], argv0?: string): Promise<Result> {
  const p = Bun.spawn(argv, { argv0, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { code, out, err };
}

/** Runs jobs a few at a time (the machine may have two cores). */
async function inBatches<T, R>(items: T[], n: number, job: (t: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < items.length; i += n)
    out.push(...(await Promise.all(items.slice(i, i + n).map(job))));
  return out;
}

/** What a correct --help gave: exit 0, the usage line naming the whole command, nothing on stderr. */
const helpOk = (name: string, r: Result) => ({
  name,
  code: r.code,
  usage: r.out.includes(`USAGE ${name}`),
  err: r.err,
});
const expected = (name: string) => ({ name, code: 0, usage: true, err: "" });

describe("--help everywhere (bun cli/main.ts)", () => {
  for (const [root, name] of [
    [heroInit, "hero-init"],
    [zinit, "zinit"],
  ] as const) {
    test(`every ${name} command and subcommand prints its usage, exit 0`, async () => {
      const all = await paths(root);
      // The tree holds what the issue named, so the walk cannot pass on an empty list.
      expect(all.length).toBeGreaterThan(name === "zinit" ? 12 : 40);
      const results = await inBatches(all, 4, async (p) => {
        const r = await run([process.execPath, MAIN, ...p, "--help"], name);
        return helpOk([name, ...p].join(" "), r);
      });
      expect(results).toEqual(all.map((p) => expected([name, ...p].join(" "))));
    }, 120_000);
  }

  test("--version prints the version (as zinit: `zinit VERSION`, also for -V)", async () => {
    for (const [argv0, args, out] of [
      ["hero-init", ["--version"], `${VERSION}\n`],
      ["zinit", ["--version"], `zinit ${VERSION}\n`],
      ["zinit", ["-V"], `zinit ${VERSION}\n`],
      ["zinit", ["-s", "/x.sock", "-V"], `zinit ${VERSION}\n`],
    ] as const) {
      const r = await run([process.execPath, MAIN, ...args], argv0);
      expect({ argv0, ...r }).toEqual({ argv0, code: 0, out, err: "" });
    }
  });
});

describe("the built binary (dist/hero-init, and as zinit by a symlink)", () => {
  test("--help and --version, lazy commands included", async () => {
    expect(existsSync(BIN)).toBe(true); // run `bash scripts/build.sh` first
    const dir = mkdtempSync(join(tmpdir(), "hero-help-"));
    try {
      const z = join(dir, "zinit");
      symlinkSync(BIN, z);
      const cases: [string, string[]][] = [
        [BIN, []],
        [BIN, ["manifest", "keygen"]],
        [BIN, ["template", "build"]],
        [BIN, ["agent", "exec"]],
        [BIN, ["list"]],
        [z, []],
        [z, ["list"]],
        [z, ["log"]],
      ];
      for (const [bin, p] of cases) {
        const name = [bin === z ? "zinit" : "hero-init", ...p].join(" ");
        expect(helpOk(name, await run([bin, ...p, "--help"]))).toEqual(expected(name));
      }
      expect(await run([BIN, "--version"])).toEqual({ code: 0, out: `${VERSION}\n`, err: "" });
      expect(await run([z, "--version"])).toEqual({ code: 0, out: `zinit ${VERSION}\n`, err: "" });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

/** Repo-relative files a file loads by static imports (type-only ones are erased), transitively. */
function staticClosure(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const text = readFileSync(join(ROOT, file), "utf8");
  const IMPORT = /^(?:import|export)\s+(?!type\s)(?:[^"'`;]*?\sfrom\s*)?["'](\.[^"']+)["']/gm;
  for (const m of text.matchAll(IMPORT))
    staticClosure(normalize(join(dirname(file), m[1] as string)), seen);
  return seen;
}

describe("lazy loading", () => {
  test("the entry, the tree and the zinit commands load no host code", () => {
    const loaded = [...staticClosure("cli/main.ts"), ...staticClosure("cli/index.ts")];
    const zinitList = [...loaded, ...staticClosure("cli/zinit.ts")];
    // The walk follows imports: the zinit commands do reach the control client.
    expect(zinitList).toContain("guest/control/client.ts");
    expect(zinitList.filter((f) => f.startsWith("host/"))).toEqual([]);
    // cli/main.ts imports nothing statically: PID 1 loads guest/pid1 only.
    expect([...staticClosure("cli/main.ts")]).toEqual(["cli/main.ts"]);
  });
});
