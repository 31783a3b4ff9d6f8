import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HERO_UNIT, heroInitUnits } from "../../lib/systemd-units.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { chooseSystemd, writeUnits } from "./systemd-handoff.ts";
import { delegatedGroups } from "./systemd-unit.ts";

const fsWith = (files: string[], links: Record<string, string> = {}) => ({
  exists: (p: string) => files.includes(p),
  resolve: (p: string) => links[p] ?? null,
});

describe("vm.toml init", () => {
  test('default "hero"; "systemd" and "auto" taken; anything else is a CONFIG ERROR on its line', () => {
    expect(parseVmConfig("", "vm.toml").config.init).toBe("hero");
    expect(parseVmConfig('init = "systemd"\n', "vm.toml").config.init).toBe("systemd");
    expect(parseVmConfig('init = "auto"\n', "vm.toml").config.init).toBe("auto");
    const bad = parseVmConfig('hostname = "a"\ninit = "upstart"\n', "vm.toml");
    expect(bad.config.init).toBe("hero");
    expect(bad.config.hostname).toBe("a");
    expect(bad.errors.map(String).join("\n")).toMatch(
      /vm\.toml:2.*init.*"hero", "systemd" or "auto"/,
    );
  });
});

describe("chooseSystemd", () => {
  test('init = "hero" never hands off', () => {
    expect(chooseSystemd("hero", fsWith(["/lib/systemd/systemd"]))).toEqual({
      stay: 'init = "hero"',
    });
  });
  test('init = "systemd" finds systemd (merged /usr first)', () => {
    expect(chooseSystemd("systemd", fsWith(["/lib/systemd/systemd"]))).toEqual({
      binary: "/lib/systemd/systemd",
    });
    expect(
      chooseSystemd("systemd", fsWith(["/usr/lib/systemd/systemd", "/lib/systemd/systemd"])),
    ).toEqual({ binary: "/usr/lib/systemd/systemd" });
  });
  test("no systemd in the image: stay, naming where it looked", () => {
    const r = chooseSystemd("systemd", fsWith([]));
    expect("stay" in r && r.stay).toContain("no systemd in the image");
  });
  test('"auto" hands off only when the image\'s own init was systemd', () => {
    const files = ["/usr/lib/systemd/systemd"];
    expect(
      chooseSystemd(
        "auto",
        fsWith(files, { "/sbin/init.before-hero": "/usr/lib/systemd/systemd" }),
      ),
    ).toEqual({ binary: "/usr/lib/systemd/systemd" });
    const busybox = chooseSystemd(
      "auto",
      fsWith(files, { "/sbin/init.before-hero": "/bin/busybox" }),
    );
    expect("stay" in busybox && busybox.stay).toContain("is not systemd");
    const none = chooseSystemd("auto", fsWith(files));
    expect("stay" in none).toBe(true);
  });
});

describe("writeUnits", () => {
  test("unit files 0644 and the .wants link that enables them", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-units-"));
    try {
      const set = heroInitUnits({ binary: "/usr/lib/hero/hero-init" });
      writeUnits(set, join(dir, "system"));
      writeUnits(set, join(dir, "system")); // again: the link is replaced, not an error
      const unit = join(dir, "system", HERO_UNIT);
      expect(readFileSync(unit, "utf8")).toBe(set.files[HERO_UNIT] as string);
      expect(statSync(unit).mode & 0o777).toBe(0o644);
      expect(readlinkSync(join(dir, "system/multi-user.target.wants", HERO_UNIT))).toBe(
        `../${HERO_UNIT}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("delegatedGroups", () => {
  test("the leaf for hero-init and the services' root, under the unit's group", () => {
    expect(delegatedGroups("0::/system.slice/hero-init.service\n")).toEqual({
      self: "/sys/fs/cgroup/system.slice/hero-init.service/init",
      services: "/sys/fs/cgroup/system.slice/hero-init.service/services",
    });
  });
  test("no unified hierarchy: null", () => {
    expect(delegatedGroups("1:name=systemd:/x\n")).toBeNull();
    expect(delegatedGroups("")).toBeNull();
  });
});
