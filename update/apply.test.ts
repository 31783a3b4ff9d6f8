import { describe, expect, test } from "bun:test";
import { parseManifest } from "../lib/manifest.ts";
import { planUpdate, spaceNeeded } from "./apply.ts";

const H = "a".repeat(64);
const bin = (name: string, version: string, extra = "") =>
  `name = "${name}"\nversion = "${version}"\nurl = "https://example.org/${name}-${version}"\nsha256 = "${H}"\nsize = 10\n${extra}`;
const manifest = parseManifest(
  `version = 3
expires = 2030-01-01T00:00:00Z

[[vm.binaries]]
${bin("mycelium", "0.6.0", 'services = ["mycelium"]')}
[[vm.binaries]]
${bin("hero-init", "1.1.0")}
[[vm.binaries]]
${bin("app", "2.0.0", 'services = ["app"]')}
`,
  "m.toml",
);
const vm = { role: "vm" as const, machineId: "m1" };

describe("planUpdate (pure)", () => {
  test("a fresh machine changes every binary; an installed version is not a change", () => {
    const p = planUpdate(manifest, vm, new Map([["app", "2.0.0"]]));
    expect(p.changes.map((c) => c.binary.name)).toEqual(["mycelium", "hero-init"]);
    expect(p.held).toEqual([]);
  });

  test("a version that failed here before is held at the installed one, with the reason", () => {
    const p = planUpdate(
      manifest,
      vm,
      new Map([
        ["mycelium", "0.5.0"],
        ["hero-init", "1.0.0"],
      ]),
      ["hero-init@1.1.0", "mycelium@0.4.0"],
    );
    expect(p.changes.map((c) => [c.binary.name, c.from])).toEqual([
      ["mycelium", "0.5.0"],
      ["app", undefined],
    ]);
    expect(p.held).toEqual([
      { name: "hero-init", version: "1.0.0", reason: "1.1.0 failed on this machine before" },
    ]);
  });

  test("a pin holds too, next to a failed version (not installed: shown as -)", () => {
    const p = planUpdate(
      manifest,
      { ...vm, pins: ["mycelium"] },
      new Map([["mycelium", "0.5.0"]]),
      ["app@2.0.0"],
    );
    expect(p.held.map((h) => [h.name, h.version])).toEqual([
      ["mycelium", "0.5.0"],
      ["app", "-"],
    ]);
    expect(p.changes.map((c) => c.binary.name)).toEqual(["hero-init"]);
  });
});

describe("spaceNeeded (pure)", () => {
  test("the sizes plus the spare; an archive counts twice (archive and binary)", () => {
    const [a, b] = manifest.vm.binaries;
    if (!a || !b) throw new Error("fixture");
    const tgz = { ...b, url: "https://example.org/x.tar.gz" };
    expect(spaceNeeded([{ binary: a }], 0)).toBe(10);
    expect(spaceNeeded([{ binary: a }, { binary: tgz }], 100)).toBe(130);
    expect(spaceNeeded([])).toBe(16 * 1024 * 1024);
  });
});
