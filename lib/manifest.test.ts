import { describe, expect, test } from "bun:test";
import { isHeroError } from "./errors.ts";
import {
  affectedServices,
  diffBinaries,
  parseManifest,
  resolveBinaries,
  rolloutBucket,
  sectionBinaries,
} from "./manifest.ts";

const fails = (t: string) => {
  try {
    parseManifest(t, "b.toml");
  } catch (e) {
    return String(e);
  }
  throw new Error("accepted");
};
const H = (c: string) => c.repeat(64);
const bin = (name: string, version: string, extra = "") =>
  `name = "${name}"\nversion = "${version}"\nurl = "https://example.org/${name}-${version}"\nsha256 = "${H("a")}"\nsize = 10\n${extra}`;

const text = `version = 7
expires = 2027-01-01T00:00:00Z

[[vm.binaries]]
${bin("mycelium", "0.6.0", 'services = ["mycelium"]')}
[[vm.binaries]]
${bin("hero-init", "1.0.0")}
[[node.binaries]]
${bin("hero-compute", "2.0.0")}

[[env.canary.vm.binaries]]
${bin("mycelium", "0.7.0", 'services = ["mycelium"]\nrollout = 30')}
`;

describe("parseManifest", () => {
  test("reads version, expires, sections and environments", () => {
    const m = parseManifest(text, "b.toml");
    expect(m.version).toBe(7);
    expect(m.expires?.toISOString()).toBe("2027-01-01T00:00:00.000Z");
    expect(m.vm.binaries.map((b) => b.name)).toEqual(["mycelium", "hero-init"]);
    expect(m.env.canary?.vm?.binaries[0]?.rollout).toBe(30);
  });

  test("an RFC 3339 string is accepted for expires; garbage is not", () => {
    expect(
      parseManifest('version = 1\nexpires = "2030-05-01T10:00:00Z"\n', "b").expires?.getTime(),
    ).toBe(Date.UTC(2030, 4, 1, 10));
    expect(() => parseManifest('version = 1\nexpires = "soon"\n', "b")).toThrow(/date-time/);
  });

  test("an unknown environment names the field", () => {
    try {
      parseManifest(`version = 1\n[[env.staging.vm.binaries]]\n${bin("x", "1")}`, "b.toml");
      throw new Error("accepted");
    } catch (e) {
      expect(isHeroError(e, "input")).toBe(true);
      expect(String(e)).toContain(
        "env.staging: environments are dev, testing, canary and production",
      );
    }
  });

  test("a binary listed twice in an environment is refused", () => {
    const t = `version = 1\n[[env.dev.vm.binaries]]\n${bin("x", "1")}[[env.dev.vm.binaries]]\n${bin("x", "2")}`;
    expect(() => parseManifest(t, "b.toml")).toThrow(/"x" listed twice/);
  });

  test("a path-like name, a bad rollout and a negative version are refused", () => {
    expect(fails(`[[vm.binaries]]\n${bin("../../sbin/init", "1")}`)).toMatch(
      /vm\.binaries\.0\.name: must be a file name/,
    );
    expect(fails(`[[vm.binaries]]\n${bin("x", "1", "rollout = 101")}`)).toMatch(
      /b\.toml:\d+: vm\.binaries\.0\.rollout: .*<=100/,
    );
    expect(fails("version = -1\n")).toMatch(/b\.toml:1: version: /);
  });

  test("service names follow the supervisor's rule; the error names file, line and field", () => {
    const two = (services: string) =>
      `version = 1\n[[vm.binaries]]\n${bin("a", "1", 'services = ["a"]\n')}[[vm.binaries]]\n${bin("b", "1", services)}`;
    expect(
      parseManifest(two('services = ["b", "getty@tty1", "_x", "b.v2"]'), "b").vm.binaries[1]
        ?.services,
    ).toEqual(["b", "getty@tty1", "_x", "b.v2"]);
    // The second binary's services line is line 15, not the first binary's.
    for (const bad of [
      "../../../etc/x",
      "..",
      ".hidden",
      "a/b",
      "x\nExecStartPre=/bin/id",
      "x\u2028y",
      "x\ty",
      "-x",
      "a b",
      "",
    ])
      expect(fails(two(`services = ["b", ${JSON.stringify(bad)}]`))).toMatch(
        /^b\.toml:15: vm\.binaries\.1\.services\.1: must be a service name/,
      );
    expect(fails(two(`services = ["${"s".repeat(129)}"]`))).toMatch(
      /services\.0: must be a service name/,
    );
  });

  test("install paths are plain absolute paths: no control characters, spaces, quotes or %", () => {
    const p = (path: string) =>
      `[[vm.binaries]]\n${bin("x", "1", `path = ${JSON.stringify(path)}`)}`;
    expect(parseManifest(p("/usr/local/bin/x-1.2_3+b@c"), "b").vm.binaries[0]?.path).toBe(
      "/usr/local/bin/x-1.2_3+b@c",
    );
    for (const bad of [
      "/usr/bin/x\nExecStartPre=/bin/id",
      "/usr/bin/x\r",
      "/usr/bin/my app",
      "/usr/bin/%h",
      "/usr/bin/$HOME",
      '/usr/bin/"x"',
      "/usr/bin/x\\y",
      "/usr/../bin/x",
      "/usr/./bin/x",
      "/usr/bin/",
      "usr/bin/x",
      "/",
    ])
      expect(fails(p(bad))).toMatch(/^b\.toml:7: vm\.binaries\.0\.path: must be an absolute path/);
  });

  test("a binary listed twice names the line of the second one", () => {
    const t = `version = 1\n[[vm.binaries]]\n${bin("x", "1")}[[vm.binaries]]\n${bin("x", "2")}`;
    expect(fails(t)).toMatch(/^b\.toml:9: vm\.binaries: binary "x" listed twice/);
  });
});

describe("resolution", () => {
  const m = parseManifest(text, "b.toml");

  test("an environment replaces binaries by name and keeps the rest", () => {
    const v = sectionBinaries(m, "vm", "canary").map((b) => `${b.name}@${b.version}`);
    expect(v).toEqual(["mycelium@0.7.0", "hero-init@1.0.0"]);
    expect(sectionBinaries(m, "vm", "production").map((b) => b.version)).toEqual([
      "0.6.0",
      "1.0.0",
    ]);
    expect(sectionBinaries(m, "node").map((b) => b.name)).toEqual(["hero-compute"]);
  });

  test("rollout buckets are deterministic and spread", () => {
    expect(rolloutBucket("m1", "a", "1")).toBe(rolloutBucket("m1", "a", "1"));
    const buckets = new Set<number>();
    for (let i = 0; i < 2000; i++) buckets.add(rolloutBucket(`machine-${i}`, "a", "1"));
    expect(buckets.size).toBe(100);
    let under30 = 0;
    for (let i = 0; i < 10000; i++)
      if (rolloutBucket(`m-${i}`, "mycelium", "0.7.0") < 30) under30++;
    expect(under30).toBeGreaterThan(2700);
    expect(under30).toBeLessThan(3300);
  });

  test("the rollout bucket is the documented formula, computed independently by coreutils sha256sum", () => {
    // docs/manifest.md: first 32 bits of sha256(machine-id NUL name NUL version) mod 100.
    const independent = (m: string, n: string, v: string) => {
      const p = Bun.spawnSync(["sha256sum"], {
        stdin: new TextEncoder().encode(`${m}\0${n}\0${v}`),
      });
      expect(p.exitCode).toBe(0);
      return Number.parseInt(p.stdout.toString().slice(0, 8), 16) % 100;
    };
    // Pinned vectors (printf 'm1\0a\0001' | sha256sum → d95a7fff…; 0xd95a7fff mod 100 = 79).
    expect(rolloutBucket("m1", "a", "1")).toBe(79);
    expect(rolloutBucket("machine-42", "mycelium", "0.7.10")).toBe(67);
    for (let i = 0; i < 20; i++) {
      const m = crypto.randomUUID().replaceAll("-", "");
      expect(rolloutBucket(m, "hero-init", `1.${i}.0`)).toBe(
        independent(m, "hero-init", `1.${i}.0`),
      );
    }
  });

  test("a machine outside the rollout keeps its version; inside takes the new one", () => {
    let inside = "";
    let outside = "";
    for (let i = 0; (!inside || !outside) && i < 1000; i++) {
      const id = `vm-${i}`;
      if (rolloutBucket(id, "mycelium", "0.7.0") < 30) inside ||= id;
      else outside ||= id;
    }
    const installed = new Map([["mycelium", "0.6.0"]]);
    const a = resolveBinaries(m, { role: "vm", env: "canary", machineId: inside, installed });
    expect(a.wanted.find((b) => b.name === "mycelium")?.version).toBe("0.7.0");
    const b = resolveBinaries(m, { role: "vm", env: "canary", machineId: outside, installed });
    expect(b.wanted.find((x) => x.name === "mycelium")).toBeUndefined();
    expect(b.held[0]?.reason).toMatch(/rollout of 0.7.0 at 30%/);
    // Not installed yet: installed whatever the bucket.
    const c = resolveBinaries(m, {
      role: "vm",
      env: "canary",
      machineId: outside,
      installed: new Map(),
    });
    expect(c.wanted.find((x) => x.name === "mycelium")?.version).toBe("0.7.0");
  });

  test("a pinned binary keeps its installed version", () => {
    const r = resolveBinaries(m, {
      role: "vm",
      machineId: "x",
      installed: new Map([["hero-init", "0.9.0"]]),
      pins: ["hero-init"],
    });
    expect(r.wanted.map((b) => b.name)).toEqual(["mycelium"]);
    expect(r.held).toEqual([
      { name: "hero-init", version: "0.9.0", reason: "pinned (manifest has 1.0.0)" },
    ]);
  });

  test("diff: new, changed, unchanged, orphaned, and the services to restart", () => {
    const wanted = sectionBinaries(m, "vm", "canary");
    const d = diffBinaries(
      wanted,
      new Map([
        ["hero-init", "1.0.0"],
        ["mycelium", "0.6.0"],
        ["old-tool", "3"],
      ]),
    );
    expect(d.changes.map((c) => [c.binary.name, c.from, c.binary.version])).toEqual([
      ["mycelium", "0.6.0", "0.7.0"],
    ]);
    expect(d.unchanged.map((b) => b.name)).toEqual(["hero-init"]);
    expect(d.orphaned).toEqual(["old-tool"]);
    expect(affectedServices(d.changes)).toEqual(["mycelium"]);
    expect(diffBinaries(wanted, new Map()).changes.map((c) => c.from)).toEqual([
      undefined,
      undefined,
    ]);
  });
});
