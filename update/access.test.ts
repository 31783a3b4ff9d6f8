import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fakeKey } from "../test/helpers/ssh-keys.ts";
import { type Fixture, makeFixture } from "../test/helpers/update-fixture.ts";
import { runUpdate, type UpdateHooks } from "./engine.ts";

let f: Fixture;
let sshd: [boolean, boolean][];
let ended: { name: string; uid: number }[][];
const hooks = (): UpdateHooks => ({
  restart: async () => {},
  health: async () => [],
  sshd: async (run, changed) => {
    sshd.push([run, changed]);
  },
  endSessions: async (users) => {
    ended.push(users);
  },
  log: () => {},
});

const PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n";

beforeEach(async () => {
  f = await makeFixture();
  f.source.env = "dev";
  sshd = [];
  ended = [];
  mkdirSync(join(f.root, "etc"), { recursive: true });
  writeFileSync(join(f.root, "etc/passwd"), PASSWD);
  writeFileSync(join(f.root, "etc/group"), "root:x:0:\nshadow:x:42:\nalice:x:1000:\n");
  writeFileSync(join(f.root, "etc/shadow"), "root:*:19000:0:99999:7:::\n", { mode: 0o640 });
});
afterEach(() => f.close());

function access(env: string, toml: string) {
  mkdirSync(join(f.pub, "access"), { recursive: true });
  writeFileSync(join(f.pub, "access", `${env}.toml`), toml);
}
const user = (name: string, keys: string[], extra = "") =>
  `[[users]]\nname = "${name}"\nkeys = [${keys.map((k) => JSON.stringify(k)).join(", ")}]\n${extra}`;
const run = () => runUpdate(f.source, f.paths, hooks());
const read = (p: string) => readFileSync(join(f.root, p), "utf8");
const st = (p: string) => statSync(join(f.root, p));

describe("the access step of an update run", () => {
  test("dev: users, keys 0600 owned by the user, passwordless sudo, sshd drop-in; a second run changes nothing", async () => {
    access("dev", user("dev", [fakeKey(1)], 'shell = "/bin/bash"\n'));
    f.publish(1);
    const r = await run();
    expect(r.outcome).toBe("updated");
    expect(r.access?.users).toEqual(["added user dev"]);
    expect(read("etc/passwd")).toBe(
      `${PASSWD}dev:x:1001:1001:managed by hero-init:/home/dev:/bin/bash\n`,
    );
    expect(read("home/dev/.ssh/authorized_keys")).toContain(fakeKey(1));
    const k = st("home/dev/.ssh/authorized_keys");
    expect([k.mode & 0o7777, k.uid, k.gid]).toEqual([0o600, 1001, 1001]);
    expect(st("home/dev/.ssh").mode & 0o7777).toBe(0o700);
    expect(read("etc/sudoers.d/hero-init-dev")).toContain("dev ALL=(root) NOPASSWD: ALL");
    expect(st("etc/sudoers.d/hero-init-dev").mode & 0o7777).toBe(0o440);
    expect(read("etc/ssh/sshd_config.d/hero-init.conf")).toContain("PasswordAuthentication no");
    expect(st("var/lib/hero-init/update/access.json").mode & 0o7777).toBe(0o600);
    expect(sshd).toEqual([[true, true]]);

    const again = await run();
    expect(again.outcome).toBe("unchanged");
    expect(again.access?.changed).toEqual([]);
    expect(sshd.at(-1)).toEqual([true, false]);
    // A key added (none taken away): nobody's sessions end.
    access("dev", user("dev", [fakeKey(1), fakeKey(2)], 'shell = "/bin/bash"\n'));
    f.publish(2);
    expect((await run()).access?.changed).toEqual(["/home/dev/.ssh/authorized_keys"]);
    expect(ended).toEqual([]);
  });

  test("converges: a removed key and a removed user are gone from the machine", async () => {
    access("dev", user("dev", [fakeKey(1), fakeKey(2)]) + user("ops", [fakeKey(3)]));
    f.publish(1);
    expect((await run()).outcome).toBe("updated");
    access("dev", user("dev", [fakeKey(2)]));
    f.publish(2);
    const r = await run();
    expect(r.access?.users).toEqual(["removed user ops"]);
    expect(read("home/dev/.ssh/authorized_keys")).not.toContain(fakeKey(1));
    expect(read("home/dev/.ssh/authorized_keys")).toContain(fakeKey(2));
    expect(read("etc/passwd")).not.toContain("ops:");
    expect(read("etc/shadow")).not.toContain("ops:");
    expect(existsSync(join(f.root, "etc/sudoers.d/hero-init-ops"))).toBe(false);
    expect(existsSync(join(f.root, "home/ops/.ssh/authorized_keys"))).toBe(false);
    expect(st("home/ops").uid).toBe(0);
    // Their open sessions end: ops removed, dev lost a key (all of dev's sessions: a key has no session).
    expect(ended).toEqual([
      [
        { name: "ops", uid: 1002 },
        { name: "dev", uid: 1001 },
      ],
    ]);
    expect(r.access?.ended).toEqual(["ops", "dev"]);
    // alice, never managed, is untouched.
    expect(read("etc/passwd")).toContain("alice:x:1000:1000::/home/alice:/bin/bash\n");
  });

  test("a user the machine already has is refused, and nothing is written", async () => {
    access("dev", user("alice", [fakeKey(1)]));
    f.publish(1);
    const r = await run();
    expect(r.outcome).toBe("failed");
    expect(r.error).toContain(
      'user "alice" already exists on this machine and was not created by hero-init',
    );
    expect(read("etc/passwd")).toBe(PASSWD);
    expect(existsSync(join(f.root, "home/alice/.ssh"))).toBe(false);
  });

  test("--check reports the access changes and writes nothing", async () => {
    access("dev", user("dev", [fakeKey(1)]));
    f.publish(1);
    const r = await runUpdate(f.source, f.paths, hooks(), { check: true });
    expect(r.outcome).toBe("available");
    expect(r.access?.changed).toContain("/home/dev/.ssh/authorized_keys");
    expect(read("etc/passwd")).toBe(PASSWD);
  });

  test("production: scoped sudo only for the listed commands", async () => {
    f.source.env = "production";
    access(
      "production",
      user(
        "ops",
        [fakeKey(4)],
        'sudo = "scoped"\nsudo_commands = ["/usr/bin/systemctl restart hero-compute"]\n',
      ),
    );
    f.publish(1);
    expect((await run()).outcome).toBe("updated");
    expect(read("etc/sudoers.d/hero-init-ops")).toContain(
      "ops ALL=(root) NOPASSWD: /usr/bin/systemctl restart hero-compute\n",
    );
    expect(read("etc/ssh/sshd_config.d/hero-init.conf")).toContain("PermitRootLogin no");
  });
});
