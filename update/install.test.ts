import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInstallCli, runUpdateCli } from "../cli/update.ts";
import {
  type Fixture,
  machineKeyLine,
  makeFixture,
  snapshot,
} from "../test/helpers/update-fixture.ts";
import {
  detectRole,
  installMachineId,
  parseNodeUpdateConfig,
  registrationFiles,
  writeMissing,
} from "./install.ts";

describe("role detection (pure)", () => {
  const base = { hypervisorFlag: false, dmi: "Supermicro X11SSL-F", pid1: "systemd" };
  test("bare metal is a node", () => expect(detectRole(base).role).toBe("node"));
  test("a hypervisor flag, a VM vendor in DMI or hero-init as PID 1 make a VM", () => {
    expect(detectRole({ ...base, hypervisorFlag: true }).why).toMatch(/hypervisor/);
    expect(detectRole({ ...base, dmi: "QEMU Standard PC (Q35 + ICH9, 2009)" }).role).toBe("vm");
    expect(detectRole({ ...base, pid1: "hero-init" })).toEqual({
      role: "vm",
      why: "hero-init is PID 1",
    });
  });
});

describe("registration files (pure)", () => {
  test("systemd: a unit per service and an update timer with a randomized delay", () => {
    const f = registrationFiles("systemd", {
      services: [{ name: "mycelium", exec: "/usr/bin/mycelium" }],
      interval: 3600,
      heroInit: "/usr/bin/hero-init",
    });
    expect(Object.keys(f).sort()).toEqual([
      "/etc/systemd/system/hero-init-update.service",
      "/etc/systemd/system/hero-init-update.timer",
      "/etc/systemd/system/mycelium.service",
    ]);
    expect(f["/etc/systemd/system/hero-init-update.timer"]).toContain("RandomizedDelaySec=360s");
    expect(f["/etc/systemd/system/mycelium.service"]).toContain("ExecStart=/usr/bin/mycelium");
  });
  test("a name or command that could leave the directory or add a line is refused", () => {
    const reg = (name: string, exec = "/usr/bin/x") =>
      registrationFiles("systemd", {
        services: [{ name, exec }],
        interval: 3600,
        heroInit: "/usr/bin/hero-init",
      });
    for (const name of ["../../../etc/cron.d/x", "x\nExecStartPre=/bin/id", "a/b", "..", "-x"])
      expect(() => reg(name)).toThrow(/cannot go into a service file: a service name/);
    for (const exec of [
      "/usr/bin/x\nExecStartPre=/bin/id",
      "/usr/bin/x y",
      "/usr/bin/%h",
      "x",
      "/usr/bin/x\r",
    ])
      expect(() => reg("x", exec)).toThrow(/cannot go into a service file: a command/);
    expect(() =>
      registrationFiles("zinit", { services: [], interval: 1.5, heroInit: "/usr/bin/hero-init" }),
    ).toThrow(/whole number of seconds/);
    // What passes makes exactly the expected lines.
    const unit = reg("getty@tty1", "/usr/local/bin/x")["/etc/systemd/system/getty@tty1.service"];
    expect(unit?.split("\n").filter((l) => /^Exec/.test(l))).toEqual([
      "ExecStart=/usr/local/bin/x",
    ]);
  });

  test("zinit: service files and a long-running updater", () => {
    const f = registrationFiles("zinit", {
      services: [],
      interval: 600,
      heroInit: "/usr/bin/hero-init",
    });
    expect(f["/etc/zinit/hero-init-update.yaml"]).toContain(
      "update --config /etc/hero-init/update.toml --every 600",
    );
  });
});

describe("writes stay inside the root", () => {
  test("a registration path that climbs out of the root is refused before any write", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-install-"));
    try {
      const root = join(dir, "root");
      mkdirSync(root);
      expect(() =>
        writeMissing(root, { "/etc/zinit/ok.yaml": "exec: /x\n", "/etc/zinit/../../../x": "" }),
      ).toThrow(/is not a path inside/);
      expect(existsSync(join(dir, "x"))).toBe(false);
      expect(writeMissing(root, { "/etc/zinit/ok.yaml": "exec: /x\n" })).toEqual([
        "/etc/zinit/ok.yaml",
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("the machine id is kept only when asked (after a successful install)", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-install-"));
    try {
      const state = join(dir, "state");
      const m = installMachineId(state);
      expect(m.id).toMatch(/^[0-9a-f]{32}$/);
      expect(existsSync(state)).toBe(false);
      m.keep();
      if (!existsSync("/etc/machine-id")) {
        expect(readFileSync(join(state, "machine-id"), "utf8")).toBe(`${m.id}\n`);
        expect(installMachineId(state).id).toBe(m.id);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("update.toml", () => {
  test("a bad key names the file, line and field", () => {
    expect(() =>
      parseNodeUpdateConfig(
        'manifest = "http://x/b.toml"\nkey = "nope"\nrole = "node"\n',
        "u.toml",
      ),
    ).toThrow(/minisign public key/);
  });
});

describe("hero-init install on a fresh node (in a root directory)", () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await makeFixture();
    f.addBinary("alpha", "1.0.0", "alpha one\n", ["alpha"]);
    f.publish(1);
    // A zinit host: its service directory exists.
    mkdirSync(join(f.root, "etc/zinit"), { recursive: true });
  });
  afterEach(() => f.close());

  const install = () =>
    runInstallCli([
      "--manifest",
      f.source.manifestUrl,
      "--key",
      machineKeyLine(f.key),
      "--role",
      "node",
      "--root",
      f.root,
    ]);

  test("installs the section's binaries, registers them, and a second run changes nothing", async () => {
    f.addBinary("beta", "1.0.0", "beta one\n", ["beta"], "node");
    f.publish(2);
    expect(await install()).toBe(0);
    expect(readlinkSync(join(f.root, "usr/bin/beta"))).toBe("/usr/lib/hero/pkgs/beta/current/beta");
    expect(readFileSync(join(f.root, "usr/lib/hero/pkgs/beta/1.0.0/beta"), "utf8")).toBe(
      "beta one\n",
    );
    // Only the [node] section is installed on a node.
    expect(existsSync(join(f.root, "usr/lib/hero/pkgs/alpha"))).toBe(false);
    expect(readFileSync(join(f.root, "etc/zinit/beta.yaml"), "utf8")).toContain(
      "exec: /usr/bin/beta",
    );
    expect(existsSync(join(f.root, "etc/zinit/hero-init-update.yaml"))).toBe(true);
    expect(readFileSync(join(f.root, "etc/hero-init/update.toml"), "utf8")).toContain(
      'role = "node"',
    );
    const before = snapshot(f.root, [join(f.root, "var/lib/hero-init")]);
    expect(await install()).toBe(0);
    expect(snapshot(f.root, [join(f.root, "var/lib/hero-init")])).toEqual(before);
    // Node-side `hero-init update` follows the written config.
    f.addBinary("beta", "1.1.0", "beta two\n", ["beta"], "node");
    f.publish(3);
    expect(await runUpdateCli(["--config", "/etc/hero-init/update.toml", "--root", f.root])).toBe(
      0,
    );
    expect(readlinkSync(join(f.root, "usr/lib/hero/pkgs/beta/current"))).toBe("1.1.0");
  });

  test("a wrong key is refused and nothing is installed", async () => {
    const code = await runInstallCli([
      "--manifest",
      f.source.manifestUrl,
      "--key",
      "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
      "--role",
      "vm",
      "--root",
      f.root,
    ]);
    expect(code).toBe(1);
    expect(existsSync(join(f.root, "usr/lib/hero/pkgs/alpha"))).toBe(false);
    expect(existsSync(join(f.root, "etc/hero-init/update.toml"))).toBe(false);
    expect(existsSync(join(f.root, "var/lib/hero-init"))).toBe(false);
  });

  test("a keys.pub an older hero-init seeded from a wrong key, with nothing trusted yet, does not block the right key", async () => {
    const state = join(f.root, "var/lib/hero-init/update");
    mkdirSync(state, { recursive: true });
    writeFileSync(
      join(state, "keys.pub"),
      "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3\n",
    );
    expect(await install()).toBe(0);
    expect(readFileSync(join(state, "keys.pub"), "utf8").trim()).toBe(machineKeyLine(f.key));
  });
});
