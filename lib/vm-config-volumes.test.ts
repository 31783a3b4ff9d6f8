/** `[[volumes]]` in vm.toml: lib/vm-config.ts's schema, errors with file, line and field. */
import { describe, expect, test } from "bun:test";
import { parseVmConfig } from "./vm-config.ts";

describe("[[volumes]]", () => {
  test("defaults: read-write ext4, no mkfs, noexec, 10 s wait; none when absent", () => {
    const { config, errors } = parseVmConfig(
      '[[volumes]]\nserial = "data"\npath = "/data"\n\n[[volumes]]\nlabel = "LOGS"\npath = "/var/log/app"\nreadonly = true\n',
      "vm.toml",
    );
    expect(errors).toEqual([]);
    expect(config.volumes).toEqual([
      {
        serial: "data",
        path: "/data",
        readonly: false,
        fs: "ext4",
        mkfs: false,
        exec: false,
        wait: 10,
      },
      {
        label: "LOGS",
        path: "/var/log/app",
        readonly: true,
        fs: "ext4",
        mkfs: false,
        exec: false,
        wait: 10,
      },
    ]);
    expect(parseVmConfig("", "vm.toml").config.volumes).toEqual([]);
  });

  test("every option", () => {
    const { config, errors } = parseVmConfig(
      '[[volumes]]\ndevice = "/dev/vdc"\npath = "/srv"\nfs = "ext4"\nmkfs = true\nowner = "1000:1000"\nmode = "0750"\nexec = true\nwait = 2\nsize_mb = 64\n',
      "vm.toml",
    );
    expect(errors).toEqual([]);
    expect(config.volumes[0]).toMatchObject({
      device: "/dev/vdc",
      mkfs: true,
      owner: "1000:1000",
      mode: "0750",
      exec: true,
      wait: 2,
      size_mb: 64,
    });
  });

  const bad: [string, string, RegExp][] = [
    ['path = "/data"', "volumes.0", /exactly one of serial, label or device/],
    ['serial = "a"\nlabel = "b"\npath = "/data"', "volumes.0", /exactly one of/],
    ['serial = "a"\npath = "data"', "volumes.0.path", /absolute path/],
    ['serial = "a"\npath = "/data/../etc"', "volumes.0.path", /\.\./],
    ['serial = "a"\npath = "/proc/x"', "volumes.0.path", /must not be/],
    ['serial = "a"\npath = "/"', "volumes.0.path", /must not be/],
    ['serial = "a very long serial number"\npath = "/d"', "volumes.0.serial", /1-20/],
    ['label = "x/y"\npath = "/d"', "volumes.0.label", /1-16/],
    ['device = "/etc/passwd"\npath = "/d"', "volumes.0.device", /under \/dev/],
    ['serial = "a"\npath = "/d"\nfs = "ntfs"', "volumes.0.fs", /ext4/],
    ['serial = "a"\npath = "/d"\nmkfs = true\nreadonly = true', "volumes.0", /read-write/],
    ['serial = "a"\npath = "/d"\nowner = "root"', "volumes.0.owner", /uid:gid/],
    ['serial = "a"\npath = "/d"\nmode = "rwx"', "volumes.0.mode", /octal/],
    ['serial = "a"\npath = "/d"\nwait = 1000', "volumes.0.wait", /300/],
    ['serial = "a"\npath = "/d"\nsurprise = 1', "volumes.0.surprise", /.+/],
  ];
  for (const [body, field, msg] of bad) {
    test(`refused: ${body.replaceAll("\n", "; ")}`, () => {
      const text = `hostname = "keep"\n\n[[volumes]]\n${body}\n`;
      const { config, errors } = parseVmConfig(text, "vm.toml");
      expect(errors.length).toBeGreaterThan(0);
      const e = errors[0];
      expect(e?.message).toMatch(msg);
      expect(e?.where.field).toBe(field);
      expect(e?.where.file).toBe("vm.toml");
      expect(e?.where.line).toBeGreaterThanOrEqual(3);
      // the bad section falls back to its default; the rest is kept
      expect(config.volumes).toEqual([]);
      expect(config.hostname).toBe("keep");
    });
  }

  test("two volumes on one path are refused", () => {
    const { errors } = parseVmConfig(
      '[[volumes]]\nserial = "a"\npath = "/d"\n[[volumes]]\nserial = "b"\npath = "/d"\n',
      "vm.toml",
    );
    expect(errors[0]?.message).toMatch(/same path/);
  });
});
