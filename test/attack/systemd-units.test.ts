/**
 * Attack tests: the systemd hand-off's units (issue 18). After the hand-off
 * the updater restarts a `[vm]` binary's service through systemctl when it
 * is a systemd unit; the service names come from the manifest. A name that
 * is an option (`--force`, `-H host`), a path, a template of another
 * manager's syntax or carries a newline must never reach systemctl, and no
 * value may add a directive to a generated unit. systemctl is replaced by a
 * recorder here (the host's systemd is not the guest's); the hand-off
 * itself is tested in QEMU (test/e2e/systemd.test.ts).
 */
import { describe, expect, test } from "bun:test";
import { unitControl } from "../../guest/pid1/systemd-unit.ts";
import { heroInitUnits, renderUnit } from "../../lib/systemd-units.ts";

const HOSTILE = [
  "--force",
  "-Hroot@evil.example",
  "--host=evil",
  "../../etc/evil",
  "a/b",
  "ssh.service\nExecStartPre=/bin/sh",
  "x;reboot",
  "$(reboot)",
  "x y",
  "",
];

function recorder() {
  const calls: string[][] = [];
  const run = async (args: string[]) => {
    calls.push(args);
    return { code: 0, out: "" };
  };
  return { calls, control: unitControl(run) };
}

describe("manifest service names → systemctl", () => {
  test.each(HOSTILE)("%j is refused before systemctl runs", async (name) => {
    const { calls, control } = recorder();
    await expect(control.restart(name)).rejects.toThrow(/not a unit name/);
    await expect(control.healthy(name)).rejects.toThrow(/not a unit name/);
    await expect(control.reload(name)).rejects.toThrow(/not a unit name/);
    await expect(control.enable(name, true)).rejects.toThrow(/not a unit name/);
    expect(calls).toEqual([]);
  });

  test.each(["restart", "reload"] as const)(
    "%s: a plain name becomes <name>.service after `--`, a full one stays",
    async (verb) => {
      const { calls, control } = recorder();
      expect(await control[verb]("hello")).toBe(true);
      expect(await control[verb]("ssh.service")).toBe(true);
      expect(calls).toEqual([
        ["cat", "--", "hello.service"],
        [verb, "--", "hello.service"],
        ["cat", "--", "ssh.service"],
        [verb, "--", "ssh.service"],
      ]);
    },
  );

  test("a name systemd does not know is neither restarted nor reloaded", async () => {
    const calls: string[][] = [];
    const control = unitControl(async (args) => {
      calls.push(args);
      return { code: 1, out: "No files found for nope.service." };
    });
    expect(await control.restart("nope")).toBe(false);
    expect(await control.reload("nope")).toBe(false);
    expect(calls).toEqual([
      ["cat", "--", "nope.service"],
      ["cat", "--", "nope.service"],
    ]);
  });
});

describe("generated units", () => {
  test("a binary path with a newline, space or specifier cannot shape hero-init.service", () => {
    for (const binary of ["/x\nExecStartPre=/bin/sh", "/x y", "/x/%h", "/x/$HOME"])
      expect(() => heroInitUnits({ binary })).toThrow(/cannot go into a unit/);
  });
  test("a directive cannot be smuggled in a value", () => {
    expect(() => renderUnit({ unit: { Description: "ok\n[Service]\nExecStart=/bin/sh" } })).toThrow(
      /control character/,
    );
  });
});
