/**
 * docs/ARCHITECTURE.md cannot drift from the code: every name in its tree
 * exists at the place the indentation gives it, and the boot sequence lists
 * the boot steps in the order guest/boot/index.ts runs them.
 */
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { BOOT_STEPS } from "../../guest/boot/index.ts";

const ROOT = join(import.meta.dir, "../..");
const DOC = readFileSync(join(ROOT, "docs/ARCHITECTURE.md"), "utf8");

/** The fenced blocks between `heading` and the next "## " heading. */
function blocksUnder(text: string, heading: string): string[] {
  const at = text.indexOf(`${heading}\n`);
  if (at < 0) throw new Error(`docs/ARCHITECTURE.md has no "${heading}"`);
  const end = text.indexOf("\n## ", at + heading.length);
  const section = text.slice(at, end < 0 ? undefined : end);
  return [...section.matchAll(/^```\n([\s\S]*?)^```/gm)].map((m) => m[1] ?? "");
}

/**
 * Pure: the paths a tree block names. A line is "<indent><names>  <comment>":
 * two spaces of indent per level, names separated by single spaces (a
 * folder ends in "/"), the comment after two or more spaces.
 */
function treePaths(block: string): string[] {
  const out: string[] = [];
  const parents: string[] = [];
  for (const line of block.split("\n")) {
    const m = /^( *)(\S.*?)(?: {2,}.*)?$/.exec(line);
    if (!m) continue;
    const depth = (m[1] ?? "").length / 2;
    const names = (m[2] ?? "").split(" ").filter((n) => /^[\w.-]+\/?$/.test(n));
    // A continuation line (deeper than any open folder) names nothing.
    if (names.length === 0 || depth > parents.length || !Number.isInteger(depth)) continue;
    parents.length = depth;
    for (const n of names) out.push([...parents, n].join(""));
    const last = names[names.length - 1] ?? "";
    if (names.length === 1 && last.endsWith("/")) parents[depth] = last;
  }
  return out;
}

describe("docs/ARCHITECTURE.md", () => {
  test("treePaths follows the indentation (so an empty result is not a pass)", () => {
    const block =
      "a/    x\n  b.ts c.ts   two files\n  d/\n    e.ts\n          more comment\nf.ts\n";
    expect(treePaths(block)).toEqual(["a/", "a/b.ts", "a/c.ts", "a/d/", "a/d/e.ts", "f.ts"]);
  });

  test("every file and folder in the tree exists", () => {
    const tree = blocksUnder(DOC, "## The tree").find((b) => b.startsWith("cli/ "));
    if (!tree) throw new Error("no tree block starting with cli/ under ## The tree");
    const all = treePaths(tree);
    expect(all.length).toBeGreaterThan(150);
    expect(all.filter((p) => !existsSync(join(ROOT, p)))).toEqual([]);
  });

  test("the boot sequence lists the boot steps in the order they run", () => {
    const block = blocksUnder(DOC, "## Boot sequence")[0] ?? "";
    const listed = [...block.matchAll(/^ {2}\d+ (\w+)/gm)].map((m) => m[1]);
    expect(listed).toEqual(BOOT_STEPS.map((s) => s.name));
  });

  test("every source path the docs name in backticks exists", () => {
    const docs = [
      "README.md",
      "guest/agent/README.md",
      ...readdirSync(join(ROOT, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => `docs/${f}`),
    ];
    const named = docs.flatMap((d) =>
      [
        ...readFileSync(join(ROOT, d), "utf8").matchAll(
          /`([a-z][\w.-]*(?:\/[\w.-]+)+\.(?:ts|c|sh))`/g,
        ),
      ].map((m) => ({ doc: d, path: m[1] ?? "" })),
    );
    expect(named.length).toBeGreaterThan(50);
    expect(named.filter((n) => !existsSync(join(ROOT, n.path)))).toEqual([]);
  });
});
