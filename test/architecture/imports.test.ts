import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Glob } from "bun";
import { ALLOWED, checkImports, folderCycles, importsOf } from "./imports.ts";

const ROOT = join(import.meta.dir, "../..");

function tree(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const dir of Object.keys(ALLOWED))
    for (const f of new Glob(`${dir}/**/*.ts`).scanSync(ROOT))
      files[f] = readFileSync(join(ROOT, f), "utf8");
  return files;
}

describe("the import rule", () => {
  test("the checker finds each kind of violation (so a clean tree means something)", () => {
    const bad = checkImports({
      "guest/pid1/x.ts": 'import { LAYOUT } from "../../host/plan.ts";\n',
      "host/y.ts": 'import type { Supervisor } from "../guest/supervisor/supervisor.ts";',
      "lib/z.ts": '\nconst m = await import("../sys/ffi.ts");',
      "guest/w.ts": 'import { dlopen } from "bun:ffi";',
      "update/ok.ts": 'import { x } from "../lib/toml.ts";\nimport { y } from "./http.ts";',
      "guest/t.test.ts": 'import { c } from "../host/agent-client.ts";',
    });
    expect(bad.map((v) => `${v.file}:${v.line} ${v.why}`)).toEqual([
      "guest/pid1/x.ts:1 guest/ may not import host/",
      "host/y.ts:1 host/ may not import guest/",
      "lib/z.ts:2 lib/ may not import sys/",
      "guest/w.ts:1 bun:ffi lives in sys/ffi.ts only",
    ]);
    expect(
      folderCycles({
        "guest/a.ts": 'import "../host/b.ts";',
        "host/b.ts": 'import "../guest/a.ts";',
      }),
    ).toContainEqual(["guest", "host", "guest"]);
  });

  test("multi-line and re-export imports are seen", () => {
    expect(
      importsOf('import {\n  a,\n  b,\n} from "./a.ts";\nexport * from "./b.ts";').map(
        (i) => i.spec,
      ),
    ).toEqual(["./a.ts", "./b.ts"]);
  });

  test("no runtime file crosses the rule", () => {
    const files = tree();
    expect(Object.keys(files).length).toBeGreaterThan(100);
    expect(checkImports(files)).toEqual([]);
  });

  test("no cycle between top-level folders", () => {
    expect(folderCycles(tree())).toEqual([]);
  });
});
