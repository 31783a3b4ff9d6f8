/**
 * The import rule, as data and a checker (pure: file texts in, violations
 * out). Top-level folders stand in layers; a file may import its own folder
 * and the folders its layer allows, never the other side:
 *
 *   lib     the floor: pure logic, schemas, the guest layout, file helpers
 *   sys     system calls (the only bun:ffi user), sockets
 *   update  trust, apply and state of signed updates (guest and node)
 *   guest   the VM runtime: boot, PID 1, supervisor, control socket, UI, agent
 *   host    the injector, templates, QEMU, the agent's host client
 *   cli     every command; the only folder that sees both guest and host
 *
 * Tests (*.test.ts) may drive one side with the other and are not checked;
 * test/, bench/ and scripts/ may import anything.
 */
import { dirname, join, normalize } from "node:path";

export const ALLOWED: Record<string, readonly string[]> = {
  lib: [],
  sys: ["lib"],
  update: ["lib", "sys"],
  guest: ["lib", "sys", "update"],
  host: ["lib", "sys", "update"],
  cli: ["lib", "sys", "update", "guest", "host"],
};

export interface Violation {
  file: string;
  line: number;
  imports: string;
  why: string;
}

const IMPORT =
  /(?:^|[\s;])(?:import|export)\s*(?:type\s+)?(?:[^"'`;]*?\sfrom\s*)?["']([^"']+)["']|import\s*\(\s*["']([^"']+)["']\s*\)/g;

/** Relative import specifiers of one file with their line numbers. */
export function importsOf(text: string): { spec: string; line: number }[] {
  const out: { spec: string; line: number }[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2];
    if (!spec) continue;
    const line = text.slice(0, m.index).split("\n").length;
    out.push({ spec, line });
  }
  return out;
}

const top = (path: string): string => path.split("/")[0] ?? "";

/** Checks the rule over `files` (repo-relative path → text). */
export function checkImports(files: Record<string, string>): Violation[] {
  const out: Violation[] = [];
  for (const [file, text] of Object.entries(files)) {
    const from = top(file);
    const allowed = ALLOWED[from];
    if (!allowed || file.endsWith(".test.ts")) continue;
    for (const { spec, line } of importsOf(text)) {
      if (spec === "bun:ffi" && file !== "sys/ffi.ts") {
        out.push({ file, line, imports: spec, why: "bun:ffi lives in sys/ffi.ts only" });
        continue;
      }
      if (!spec.startsWith(".")) continue;
      const target = normalize(join(dirname(file), spec));
      const to = top(target);
      if (to === from || allowed.includes(to)) continue;
      if (to === "package.json" && from === "lib") continue; // lib/version.ts reads the version
      out.push({ file, line, imports: target, why: `${from}/ may not import ${to}/` });
    }
  }
  return out;
}

/** Cycles between top-level folders (each as a list of folders), from all non-test files. */
export function folderCycles(files: Record<string, string>): string[][] {
  const edges = new Map<string, Set<string>>();
  for (const [file, text] of Object.entries(files)) {
    if (file.endsWith(".test.ts") || !(top(file) in ALLOWED)) continue;
    for (const { spec } of importsOf(text)) {
      if (!spec.startsWith(".")) continue;
      const to = top(normalize(join(dirname(file), spec)));
      if (to !== top(file) && to in ALLOWED) {
        const s = edges.get(top(file)) ?? new Set();
        s.add(to);
        edges.set(top(file), s);
      }
    }
  }
  const cycles: string[][] = [];
  const visit = (node: string, path: string[]): void => {
    for (const next of edges.get(node) ?? []) {
      const at = path.indexOf(next);
      if (at >= 0) cycles.push([...path.slice(at), next]);
      else visit(next, [...path, next]);
    }
  };
  for (const start of edges.keys()) visit(start, [start]);
  return cycles;
}
