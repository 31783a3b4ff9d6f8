import { describe, expect, test } from "bun:test";
import { HeroError } from "./errors.ts";
import { execLine, HERO_UNIT, heroInitUnits, renderUnit, unitName } from "./systemd-units.ts";

describe("renderUnit", () => {
  test("sections in order, arrays repeat the directive, booleans as yes/no", () => {
    const text = renderUnit({
      comment: ["generated"],
      unit: { Description: "a b", After: ["x.target", "y.target"] },
      service: { ExecStart: "/bin/true", Delegate: true, RestartSec: 1, Skip: undefined },
      install: { WantedBy: "multi-user.target" },
    });
    expect(text).toBe(
      "# generated\n[Unit]\nDescription=a b\nAfter=x.target\nAfter=y.target\n\n" +
        "[Service]\nExecStart=/bin/true\nDelegate=yes\nRestartSec=1\n\n" +
        "[Install]\nWantedBy=multi-user.target\n",
    );
  });

  test("a newline cannot add a directive", () => {
    let err: unknown;
    try {
      renderUnit({ unit: { Description: "x\nExecStartPre=/bin/evil" } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(HeroError);
    expect(String(err)).toContain("Description");
    expect(() => renderUnit({ comment: ["a\nExecStart=/x"], unit: {} })).toThrow(/control/);
  });

  test("% is escaped outside commands (no specifier expansion)", () => {
    expect(renderUnit({ unit: { Description: "100% %H" } })).toContain("Description=100%% %%H\n");
  });
});

describe("execLine", () => {
  test("plain words join", () => {
    expect(execLine(["/usr/lib/hero/hero-init", "unit"])).toBe("/usr/lib/hero/hero-init unit");
  });
  test.each([
    [["hero-init", "unit"], /absolute/],
    [["/bin/x", "a b"], /cannot go/],
    [["/bin/x", "$HOME"], /cannot go/],
    [["/bin/x", "%h"], /cannot go/],
    [["/bin/x;/bin/y"], /cannot go/],
    [["/usr/../bin/sh"], /cannot go/],
    [[], /absolute/],
  ])("%j is refused", (argv, re) => {
    expect(() => execLine(argv)).toThrow(re);
  });
});

describe("unitName", () => {
  test("names with a suffix pass, others are refused", () => {
    expect(unitName("hero-init.service")).toBe("hero-init.service");
    expect(unitName("getty@ttyS0.service")).toBe("getty@ttyS0.service");
    for (const bad of [
      "hero-init",
      "../x.service",
      "a/b.service",
      "a b.service",
      "x.service\n",
      "--force.service",
      ".service",
    ])
      expect(() => unitName(bad)).toThrow(/not a unit name/);
  });
});

describe("heroInitUnits", () => {
  test("one delegated unit running `<binary> unit`, enabled by a wants link", () => {
    const set = heroInitUnits({ binary: "/usr/lib/hero/hero-init" });
    const text = set.files[HERO_UNIT] as string;
    expect(text).toContain("\nExecStart=/usr/lib/hero/hero-init unit\n");
    expect(text).toContain("\nDelegate=yes\n");
    expect(text).toContain("\nKillMode=mixed\n");
    expect(text).toContain("\nRestart=always\n");
    expect(set.links).toEqual({
      "multi-user.target.wants/hero-init.service": "../hero-init.service",
    });
  });
  test("a binary path that cannot go into a unit is refused", () => {
    expect(() => heroInitUnits({ binary: "/tmp/my hero" })).toThrow(/cannot go/);
  });
});
