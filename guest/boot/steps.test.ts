import { describe, expect, test } from "bun:test";
import { cmdlineParams } from "./cmdline.ts";
import { chooseVmConfigFile, resolveBootConfig } from "./config.ts";
import { chooseConsole } from "./console.ts";
import { hostsFile } from "./hostname.ts";
import { mountPoints } from "./mounts.ts";
import { resolvConf } from "./network.ts";

describe("console choice", () => {
  test("prefers hvc0, then ttyS0, else /dev/console", () => {
    const all = () => true;
    expect(chooseConsole("ttyS0 hvc0\n", all)).toBe("/dev/hvc0");
    expect(chooseConsole("tty0 ttyS0\n", all)).toBe("/dev/ttyS0");
    expect(chooseConsole("tty0\n", all)).toBe("/dev/console");
    expect(chooseConsole("hvc0", () => false)).toBe("/dev/console");
  });
});

describe("/etc/hosts", () => {
  test("fresh file has localhost and the host", () => {
    expect(hostsFile(null, "vm1.example.org")).toContain("127.0.1.1\tvm1.example.org vm1\n");
  });
  test("existing entries are kept and the host line appended once", () => {
    const once = hostsFile("10.1.1.1 db\n", "vm1");
    expect(once).toBe("10.1.1.1 db\n127.0.1.1\tvm1\n");
    expect(hostsFile(once, "vm1")).toBeNull();
  });
});

describe("mountinfo", () => {
  test("reads mount points and unescapes octal", () => {
    const text = "22 1 0:21 / /proc rw - proc proc rw\n23 1 0:5 / /mnt/a\\040b rw - tmpfs x rw\n";
    expect([...mountPoints(text)]).toEqual(["/proc", "/mnt/a b"]);
  });
});

describe("resolv.conf", () => {
  test("none without DNS, nameserver lines otherwise", () => {
    expect(resolvConf({ dns: [], search: [], interfaces: [] })).toBeNull();
    expect(resolvConf({ dns: ["10.0.2.3"], search: ["lan"], interfaces: [] })).toBe(
      "# written by hero-init\nnameserver 10.0.2.3\nsearch lan\n",
    );
  });
});

describe("boot config", () => {
  test("kernel parameters override the file and go through validation", () => {
    const { config, errors } = resolveBootConfig(
      'hostname = "a"\n',
      "/vm.toml",
      cmdlineParams("hero.hostname=b hero.ui.port=0"),
    );
    expect(config.hostname).toBe("b");
    expect(config.ui.port).toBe(9999);
    expect(errors.map(String)).toEqual([
      expect.stringMatching(/^\/vm\.toml: ui\.port: .*using the default for \[ui\]/),
    ]);
  });
  test("no file: defaults, no errors", () => {
    const { config, errors } = resolveBootConfig(null, "/vm.toml", new Map());
    expect(config.hostname).toBe("hero-vm");
    expect(errors).toEqual([]);
  });
});

describe("precedence: kernel arguments > config disk > rootfs", () => {
  test("hero.config= wins, then the config disk's copy, then the rootfs's vm.toml", () => {
    expect(chooseVmConfigFile("/x.toml", "/run/d/vm.toml", "/etc/vm.toml")).toBe("/x.toml");
    expect(chooseVmConfigFile(undefined, "/run/d/vm.toml", "/etc/vm.toml")).toBe("/run/d/vm.toml");
    expect(chooseVmConfigFile("", null, "/etc/vm.toml")).toBe("/etc/vm.toml");
  });
});
