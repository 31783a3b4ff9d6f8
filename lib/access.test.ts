import { describe, expect, test } from "bun:test";
import * as v from "valibot";
import { fakeKey } from "../test/helpers/ssh-keys.ts";
import {
  type Access,
  AccessSchema,
  checkAccess,
  lostKeys,
  planAccess,
  sshdConfigText,
  sshKeyProblem,
  sudoCommandProblem,
  sudoersText,
} from "./access.ts";

const access = (o: unknown): Access => v.parse(AccessSchema, o);
const at = (env: string, path: (string | number)[]) => ({
  field: ["env", env, "access", ...path].join("."),
});
const check = (s: Record<string, unknown>) =>
  checkAccess(Object.fromEntries(Object.entries(s).map(([e, a]) => [e, access(a)])), at);

const PASSWD =
  "root:x:0:0:root:/root:/bin/bash\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\nalice:x:1000:1000::/home/alice:/bin/bash\n";
const GROUP = "root:x:0:\nshadow:x:42:\nalice:x:1000:\n";
const SHADOW = "root:*:19000:0:99999:7:::\nalice:$y$hash:19000:0:99999:7:::\n";
const files = { passwd: PASSWD, group: GROUP, shadow: SHADOW };

describe("sshKeyProblem", () => {
  test("accepts a key with or without a comment", () => {
    expect(sshKeyProblem(fakeKey(1))).toBeNull();
    expect(sshKeyProblem(fakeKey(1).split(" ").slice(0, 2).join(" "))).toBeNull();
  });
  test("refuses a type that does not match the blob", () => {
    expect(sshKeyProblem(fakeKey(1).replace("ssh-ed25519", "ssh-rsa"))).toContain("not a ssh-rsa");
  });
});

describe("sudoCommandProblem", () => {
  test("accepts a plain command with arguments", () => {
    expect(sudoCommandProblem("/usr/bin/systemctl restart hero-compute")).toBeNull();
  });
});

describe("policies (checkAccess)", () => {
  const dev = { users: [{ name: "dev", keys: [fakeKey(1)] }] };
  test("dev defaults to passwordless sudo; canary refuses it", () => {
    check({ dev });
    expect(sudoersText(access(dev).users[0] as never, "dev")).toContain("NOPASSWD: ALL");
    expect(() =>
      check({ canary: { users: [{ name: "ops", keys: [fakeKey(2)], sudo: "passwordless" }] } }),
    ).toThrow('environment "canary": user "ops": passwordless sudo is not allowed');
  });
  test("canary and production default to no sudo", () => {
    const a = access({ users: [{ name: "ops", keys: [fakeKey(2)] }] });
    expect(sudoersText(a.users[0] as never, "production")).toBeNull();
  });
  test("production refuses a key the dev environment lists", () => {
    expect(() =>
      check({ dev, production: { users: [{ name: "ops", keys: [fakeKey(1, "other comment")] }] } }),
    ).toThrow('environment "production": user "ops": key 1 is a dev key');
    check({ dev, production: { users: [{ name: "ops", keys: [fakeKey(2)] }] } });
  });
  test("scoped sudo needs commands, and commands need scoped", () => {
    expect(() =>
      check({ canary: { users: [{ name: "ops", keys: [fakeKey(2)], sudo: "scoped" }] } }),
    ).toThrow("needs sudo_commands");
    expect(() =>
      check({
        dev: { users: [{ name: "d", keys: [fakeKey(2)], sudo_commands: ["/usr/bin/id"] }] },
      }),
    ).toThrow('need sudo = "scoped"');
  });
  test("lockout: no user with a key, or sshd off, is refused naming the environment", () => {
    expect(() => check({ production: { users: [{ name: "ops" }] } })).toThrow(
      'environment "production": no user with an SSH key',
    );
    expect(() =>
      check({ testing: { sshd: false, users: [{ name: "t", keys: [fakeKey(3)] }] } }),
    ).toThrow('environment "testing": sshd = false leaves no way in');
    check({ testing: { sshd: false, console_only: true } });
  });
  test("a user listed twice is refused", () => {
    expect(() => check({ dev: { users: [dev.users[0], dev.users[0]] } })).toThrow("listed twice");
  });
});

describe("sshdConfigText", () => {
  test("restricted environments forbid root login and forwarding", () => {
    expect(sshdConfigText("production")).toContain("PermitRootLogin no\n");
    expect(sshdConfigText("production")).toContain("AllowTcpForwarding no\n");
    expect(sshdConfigText("dev")).not.toContain("AllowTcpForwarding");
    expect(sshdConfigText("dev")).toContain("PasswordAuthentication no\n");
  });
});

describe("planAccess", () => {
  const want = access({
    users: [
      { name: "dev", keys: [fakeKey(1)], shell: "/bin/bash" },
      { name: "ops", keys: [fakeKey(2)], sudo: "scoped", sudo_commands: ["/usr/bin/id -u"] },
    ],
  });
  test("adds users with the next free uid, their keys 0600, sudoers 0440 and the sshd drop-in", () => {
    const p = planAccess("dev", want, { users: {} }, files);
    expect(p.record.users).toEqual({
      dev: { uid: 1001, home: "/home/dev" },
      ops: { uid: 1002, home: "/home/ops" },
    });
    const write = (path: string) =>
      p.edits.find((e) => e.kind === "write" && e.path === path) as Extract<
        (typeof p.edits)[number],
        { kind: "write" }
      >;
    expect(write("/etc/passwd").content).toBe(
      `${PASSWD}dev:x:1001:1001:managed by hero-init:/home/dev:/bin/bash\nops:x:1002:1002:managed by hero-init:/home/ops:/bin/sh\n`,
    );
    expect(write("/etc/shadow").content).toEndWith("dev:*:::::::\nops:*:::::::\n");
    expect(write("/etc/shadow").gid).toBe(42);
    expect(write("/etc/group").content).toEndWith("alice:x:1000:\ndev:x:1001:\nops:x:1002:\n");
    const keys = write("/home/dev/.ssh/authorized_keys");
    expect([keys.mode, keys.uid, keys.gid]).toEqual([0o600, 1001, 1001]);
    expect(keys.content).toContain(fakeKey(1));
    expect(write("/etc/sudoers.d/hero-init-dev").content).toContain(
      "dev ALL=(root) NOPASSWD: ALL\n",
    );
    expect(write("/etc/sudoers.d/hero-init-ops").content).toContain(
      "ops ALL=(root) NOPASSWD: /usr/bin/id -u\n",
    );
    expect(write("/etc/sudoers.d/hero-init-ops").sudoers).toBe(true);
    expect(write("/etc/ssh/sshd_config.d/hero-init.conf").content).toContain("environment dev");
    expect(p.summary).toEqual(["added user dev", "added user ops"]);
  });

  test("converges: a second plan leaves the account files alone; a removed user loses keys and sudo", () => {
    const first = planAccess("dev", want, { users: {} }, files);
    const after = (path: string) =>
      (first.edits.find((e) => e.kind === "write" && e.path === path) as { content: string })
        .content;
    const now = {
      passwd: after("/etc/passwd"),
      group: after("/etc/group"),
      shadow: after("/etc/shadow"),
    };
    const again = planAccess("dev", want, first.record, now);
    expect(again.edits.some((e) => e.path === "/etc/passwd")).toBe(false);
    expect(again.summary).toEqual([]);

    const fewer = access({ users: [want.users[0]] });
    const p = planAccess("dev", fewer, first.record, now);
    expect(p.record.users).toEqual({ dev: { uid: 1001, home: "/home/dev" } });
    // Sudo goes first, then the keys, then the home is made root's.
    expect(p.edits.slice(0, 3)).toEqual([
      { kind: "remove", path: "/etc/sudoers.d/hero-init-ops" },
      { kind: "remove", path: "/home/ops/.ssh/authorized_keys" },
      { kind: "chown", path: "/home/ops", mode: 0o700, uid: 0, gid: 0 },
    ]);
    const passwd = p.edits.find((e) => e.path === "/etc/passwd") as { content: string };
    expect(passwd.content).not.toContain("ops:");
    expect(passwd.content).toContain("dev:x:1001");
    expect(p.summary).toEqual(["removed user ops"]);
  });

  test("a key removed from the manifest is gone from authorized_keys", () => {
    const one = access({ users: [{ name: "dev", keys: [fakeKey(1), fakeKey(5)] }] });
    const two = access({ users: [{ name: "dev", keys: [fakeKey(5)] }] });
    const p1 = planAccess("dev", one, { users: {} }, files);
    const p2 = planAccess("dev", two, p1.record, files);
    const keys = p2.edits.find((e) => e.path === "/home/dev/.ssh/authorized_keys") as {
      content: string;
    };
    expect(keys.content).not.toContain(fakeKey(1));
    expect(keys.content).toContain(fakeKey(5));
  });

  test("never takes over a user it did not create", () => {
    const a = access({ users: [{ name: "alice", keys: [fakeKey(1)] }] });
    expect(() => planAccess("dev", a, { users: {} }, files)).toThrow(
      'user "alice" already exists on this machine and was not created by hero-init',
    );
  });

  test("no access section: nothing is planned", () => {
    expect(planAccess("dev", undefined, { users: {} }, files).edits).toEqual([]);
  });
});

describe("lostKeys", () => {
  test("the keys taken away, by identity: a changed comment is the same key, an added key is no loss", () => {
    const k1 = fakeKey(1, "old-comment");
    const before = `# managed by hero-init\n${k1}\n${fakeKey(2)}\n`;
    expect(
      lostKeys(before, `${fakeKey(1, "new-comment")}\n${fakeKey(2)}\n${fakeKey(3)}\n`),
    ).toEqual([]);
    expect(lostKeys(before, `${fakeKey(2)}\n`)).toEqual([k1.split(" ").slice(0, 2).join(" ")]);
    expect(lostKeys("", `${fakeKey(1)}\n`)).toEqual([]);
  });
});
