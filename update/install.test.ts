import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runInstallCli, runNodeCli, runUpdateCli } from "../cli/update.ts";
import {
  type Fixture,
  machineKeyLine,
  makeFixture,
  snapshot,
} from "../test/helpers/update-fixture.ts";
import {
  checkUnitArg,
  detectRole,
  ensureMyceliumKey,
  installMachineId,
  installSelf,
  nodeMyceliumArgs,
  parseNodeUpdateConfig,
  REGISTRATION_MARK,
  registrationFiles,
  writeRegistration,
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

  test("systemd: restart policy, network-online, hardening; the update oneshot and its timer", () => {
    const f = registrationFiles("systemd", {
      services: [
        {
          name: "mycelium",
          exec: "/usr/bin/mycelium",
          args: ["-k", "/k", "--peers", "tcp://[2001:db8::1]:9651"],
        },
      ],
      interval: 60,
      heroInit: "/usr/bin/hero-init",
    });
    const unit = f["/etc/systemd/system/mycelium.service"] ?? "";
    expect(unit.startsWith(REGISTRATION_MARK)).toBe(true);
    for (const line of [
      "Wants=network-online.target",
      "After=network-online.target",
      "ExecStart=/usr/bin/mycelium -k /k --peers tcp://[2001:db8::1]:9651",
      "Restart=always",
      "StartLimitIntervalSec=0",
      "NoNewPrivileges=yes",
      "PrivateTmp=yes",
      "ProtectHome=yes",
      "WantedBy=multi-user.target",
    ])
      expect(unit.split("\n")).toContain(line);
    // The updater writes users' ~/.ssh (environment access): /home must be visible to it.
    const updater = f["/etc/systemd/system/hero-init-update.service"] ?? "";
    expect(updater).toContain("PrivateTmp=yes");
    expect(updater).not.toContain("ProtectHome");
    const timer = f["/etc/systemd/system/hero-init-update.timer"] ?? "";
    // A short interval is not held back by the boot delay.
    expect(timer).toContain("OnBootSec=60s\nOnUnitActiveSec=60s\nRandomizedDelaySec=6s");
    expect(f["/etc/systemd/system/hero-init-update.service"]).toContain(
      "Type=oneshot\nExecStart=/usr/bin/hero-init update --config /etc/hero-init/update.toml",
    );
  });

  test("an argument that could mean something to systemd or YAML is refused", () => {
    for (const bad of ["a b", "%h", "$HOME", "x;y", "x#y", "'q'", "a\nb", "", "\\x"])
      expect(() => checkUnitArg(bad, "args")).toThrow(/cannot be an argument/);
    expect(checkUnitArg("quic://[2001:db8::1]:9651", "args")).toBe("quic://[2001:db8::1]:9651");
    expect(nodeMyceliumArgs({ key_file: "/k", peers: [] })).toEqual([
      "-k",
      "/k",
      "--tun-name",
      "mycelium",
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

/** Runs `fn` in a fresh temporary directory, removed afterwards. */
function inTempDir(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), "hero-install-"));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("writes stay inside the root", () => {
  test("a registration path that climbs out of the root is refused before any write", () => {
    inTempDir((dir) => {
      const root = join(dir, "root");
      mkdirSync(root);
      expect(() =>
        writeRegistration(root, {
          "/etc/zinit/ok.yaml": "exec: /x\n",
          "/etc/zinit/../../../x": "",
        }),
      ).toThrow(/is not a path inside/);
      expect(existsSync(join(dir, "x"))).toBe(false);
      expect(writeRegistration(root, { "/etc/zinit/ok.yaml": "exec: /x\n" })).toEqual({
        created: ["/etc/zinit/ok.yaml"],
        rewritten: [],
      });
    });
  });

  test("the machine id is kept only when asked (after a successful install)", () => {
    inTempDir((dir) => {
      const state = join(dir, "state");
      const m = installMachineId(state);
      expect(m.id).toMatch(/^[0-9a-f]{32}$/);
      expect(existsSync(state)).toBe(false);
      m.keep();
      if (!existsSync("/etc/machine-id")) {
        expect(readFileSync(join(state, "machine-id"), "utf8")).toBe(`${m.id}\n`);
        expect(installMachineId(state).id).toBe(m.id);
      }
    });
  });
});

describe("rewriting what install wrote, keeping what the operator wrote", () => {
  test("a marked file is rewritten when it differs; an unmarked one is kept", () => {
    inTempDir((root) => {
      const a = "/etc/zinit/a.yaml";
      const b = "/etc/zinit/b.yaml";
      writeRegistration(root, { [a]: `${REGISTRATION_MARK}\nexec: /old\n` });
      mkdirSync(join(root, "etc/zinit"), { recursive: true });
      writeFileSync(join(root, b), "exec: /mine\n");
      const files = {
        [a]: `${REGISTRATION_MARK}\nexec: /new\n`,
        [b]: `${REGISTRATION_MARK}\nexec: /new\n`,
      };
      expect(writeRegistration(root, files)).toEqual({ created: [], rewritten: [a] });
      expect(readFileSync(join(root, a), "utf8")).toContain("/new");
      expect(readFileSync(join(root, b), "utf8")).toBe("exec: /mine\n");
      expect(writeRegistration(root, files)).toEqual({ created: [], rewritten: [] });
    });
  });
});

describe("hero-init itself and the mycelium key", () => {
  test("installSelf puts the binary behind pkgs/hero-init/current once; the engine's copy wins", () => {
    inTempDir((root) => {
      const self = join(root, "self");
      writeFileSync(self, "hero-init bytes");
      const pkgs = join(root, "usr/lib/hero/pkgs");
      expect(installSelf({ root, pkgs, self, version: "0.1.0" })).toBe(true);
      expect(readlinkSync(join(root, "usr/bin/hero-init"))).toBe(
        "/usr/lib/hero/pkgs/hero-init/current/hero-init",
      );
      expect(readlinkSync(join(pkgs, "hero-init/current"))).toBe("0.1.0");
      expect(readFileSync(join(pkgs, "hero-init/0.1.0/hero-init"), "utf8")).toBe("hero-init bytes");
      expect(statSync(join(pkgs, "hero-init/0.1.0/hero-init")).mode & 0o777).toBe(0o755);
      // Already managed (by this or by the manifest): nothing is copied again.
      writeFileSync(self, "another build");
      expect(installSelf({ root, pkgs, self, version: "0.2.0" })).toBe(false);
      expect(existsSync(join(pkgs, "hero-init/0.2.0"))).toBe(false);
    });
  });

  test("the mycelium key is made once, 0600 in a 0700 directory", () => {
    inTempDir((root) => {
      expect(ensureMyceliumKey(root, "/var/lib/mycelium/key.bin")).toBe(true);
      const key = readFileSync(join(root, "var/lib/mycelium/key.bin"));
      expect(key.length).toBe(32);
      expect(statSync(join(root, "var/lib/mycelium/key.bin")).mode & 0o777).toBe(0o600);
      expect(statSync(join(root, "var/lib/mycelium")).mode & 0o777).toBe(0o700);
      expect(ensureMyceliumKey(root, "/var/lib/mycelium/key.bin")).toBe(false);
      expect(readFileSync(join(root, "var/lib/mycelium/key.bin"))).toEqual(key);
    });
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

  /** `hero-init install` of the fixture's manifest as a node, under --root; `extra` goes before --root. */
  const install = (...extra: string[]) =>
    runInstallCli([
      "--manifest",
      f.source.manifestUrl,
      "--key",
      machineKeyLine(f.key),
      "--role",
      "node",
      ...extra,
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

  test("mycelium in [node]: a key, and the peers of the config in its service; peers changed → rewritten", async () => {
    f.addBinary("mycelium", "0.7.0", "not really mycelium\n", ["mycelium"], "node");
    f.publish(2);
    const withPeers = (peers: string) => install("--peers", peers);
    expect(await withPeers("tcp://192.0.2.1:9651")).toBe(0);
    expect(readFileSync(join(f.root, "etc/zinit/mycelium.yaml"), "utf8")).toContain(
      "exec: /usr/bin/mycelium -k /var/lib/mycelium/key.bin --tun-name mycelium --peers tcp://192.0.2.1:9651\n",
    );
    expect(statSync(join(f.root, "var/lib/mycelium/key.bin")).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(f.root, "etc/hero-init/update.toml"), "utf8")).toContain(
      "tcp://192.0.2.1:9651",
    );
    const key = readFileSync(join(f.root, "var/lib/mycelium/key.bin"));
    expect(await withPeers("tcp://192.0.2.2:9651,quic://192.0.2.3:9651")).toBe(0);
    expect(readFileSync(join(f.root, "etc/zinit/mycelium.yaml"), "utf8")).toContain(
      "--peers tcp://192.0.2.2:9651 quic://192.0.2.3:9651\n",
    );
    expect(readFileSync(join(f.root, "var/lib/mycelium/key.bin"))).toEqual(key);
    // A peer that is not a peer URI is refused before anything changes.
    expect(await withPeers("tcp://a b:1")).toBe(2);
  });

  test("node register runs a pass on the node's config and returns after it", async () => {
    f.addBinary("beta", "1.0.0", "beta one\n", ["beta"], "node");
    f.publish(2);
    expect(await install()).toBe(0);
    f.addBinary("beta", "2.0.0", "beta two\n", ["beta"], "node");
    f.publish(3);
    expect(await runNodeCli(["register", "--root", f.root, "--timeout", "60"])).toBe(0);
    expect(readlinkSync(join(f.root, "usr/lib/hero/pkgs/beta/current"))).toBe("2.0.0");
    expect(existsSync(join(f.root, "usr/lib/hero/pkgs/beta/1.0.0"))).toBe(false);
    expect(existsSync(join(f.root, "var/lib/hero-init/update/pass.lock"))).toBe(false);
    expect(await runNodeCli(["register", "--root", f.root, "--timeout", "0"])).toBe(2);
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
