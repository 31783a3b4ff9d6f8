import { describe, expect, test } from "bun:test";
import { initOptions } from "./init-mode.ts";

describe("hero-init init options (pure)", () => {
  test("zinit's -c and -b, hero-init's extras, every -s", () => {
    expect(
      initOptions(
        { config: "/etc/z", buffer: "500", "vm-config": "/vm.toml", "cgroup-root": "/sys/x" },
        ["/a.sock", "/b.sock"],
      ),
    ).toEqual({
      configDir: "/etc/z",
      sockets: ["/a.sock", "/b.sock"],
      vmConfig: "/vm.toml",
      cgroupRoot: "/sys/x",
      ringSize: 500,
    });
    expect(initOptions({}, [])).toEqual({ sockets: [] });
  });

  test.each(["9", "ten", "12.5"])("-b %s is refused with a usage error", (b) => {
    expect(() => initOptions({ buffer: b }, [])).toThrow("-b needs a number ≥ 10");
  });
});
