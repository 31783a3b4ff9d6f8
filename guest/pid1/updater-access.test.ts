/**
 * The access step as PID 1 runs it: a real supervisor with an `sshd`
 * service (a stand-in process: the real sshd runs in test/e2e/env-access),
 * the updater following the fixture's bootstrap server. The environment's
 * `sshd` setting starts or stops the service; a changed drop-in alone
 * does not restart it (that would end open sessions).
 */
import { afterEach, beforeEach, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { validateServiceSpec } from "../../lib/service-spec.ts";
import { until } from "../../test/helpers/poll.ts";
import { fakeKey } from "../../test/helpers/ssh-keys.ts";
import { type Fixture, machineKeyLine, makeFixture } from "../../test/helpers/update-fixture.ts";
import { createSupervisor, type Supervisor } from "../supervisor/supervisor.ts";
import { startUpdater, type UnitControl, type Updater } from "./updater.ts";

let f: Fixture;
let sup: Supervisor;
let updater: Updater;

beforeEach(async () => {
  f = await makeFixture();
  mkdirSync(join(f.root, "etc"), { recursive: true });
  writeFileSync(join(f.root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
  writeFileSync(join(f.root, "etc/group"), "root:x:0:\n");
  sup = createSupervisor({ cgroups: false });
  sup.monitor("sshd", validateServiceSpec({ exec: "sleep 1000" }, "sshd.yaml"));
  updater = start(sup);
});

/** PID 1's updater on the fixture, environment testing. */
const start = (s: Supervisor, units?: UnitControl) =>
  startUpdater(
    {
      manifest: f.source.manifestUrl,
      key: machineKeyLine(f.key),
      env: "testing",
      interval: 0,
      jitter: 0,
      pins: [],
      health_seconds: 0,
    },
    s,
    { stateDir: f.paths.stateDir, pkgs: f.paths.pkgs, root: f.root, units },
  );
afterEach(async () => {
  updater.stop();
  await sup.stop("sshd");
  await f.close();
});

function access(toml: string, version: number) {
  mkdirSync(join(f.pub, "access"), { recursive: true });
  writeFileSync(join(f.pub, "access/testing.toml"), toml);
  f.publish(version);
}
const state = () => sup.status("sshd").state;

test("sshd = false stops the sshd service; sshd = true starts it again, once", async () => {
  await until("sshd to run", () => state() === "Running", 10_000, 50);
  const pid = sup.status("sshd").pid;
  access("sshd = false\nconsole_only = true\n", 1);
  expect((await updater.apply()).outcome).toBe("updated");
  expect(state()).not.toBe("Running");

  access(`[[users]]\nname = "tester"\nkeys = [${JSON.stringify(fakeKey(1))}]\n`, 2);
  expect((await updater.apply()).outcome).toBe("updated");
  await until("sshd to run again", () => state() === "Running", 10_000, 50);
  const again = sup.status("sshd").pid;
  expect(again).not.toBe(pid);

  // A new key changes authorized_keys only: sshd keeps running, same process.
  access(`[[users]]\nname = "tester"\nkeys = [${JSON.stringify(fakeKey(2))}]\n`, 3);
  const r = await updater.apply();
  expect(r.access?.changed).toEqual(["/home/tester/.ssh/authorized_keys"]);
  expect(sup.status("sshd").pid).toBe(again);
});

test("after the systemd hand-off (no zinit sshd service): ssh.service is enabled and reloaded when its drop-in is written, disabled, enabled again", async () => {
  const calls: string[] = [];
  const units: UnitControl = {
    restart: async () => false,
    healthy: async () => true,
    enable: async (name, on) => {
      calls.push(`${on ? "enable" : "disable"} ${name}`);
      return true;
    },
    reload: async (name) => {
      calls.push(`reload ${name}`);
      return true;
    },
  };
  const handedOff = start(createSupervisor({ cgroups: false }), units);
  const dropIn = join(f.root, "etc/ssh/sshd_config.d/hero-init.conf");
  try {
    // systemd started the image's sshd at boot: the first drop-in must reach it without a reboot.
    access(`[[users]]\nname = "tester"\nkeys = [${JSON.stringify(fakeKey(1))}]\n`, 1);
    const r = await handedOff.apply();
    expect(r.outcome).toBe("updated");
    expect(r.access?.changed).toContain("/etc/ssh/sshd_config.d/hero-init.conf");
    expect(readFileSync(dropIn, "utf8")).toContain("PasswordAuthentication no");
    expect(calls).toEqual(["enable ssh.service", "reload ssh.service"]);
    calls.length = 0;
    access("sshd = false\nconsole_only = true\n", 2);
    expect((await handedOff.apply()).outcome).toBe("updated");
    // The drop-in is the same: enabled again, not reloaded.
    access(`[[users]]\nname = "tester"\nkeys = [${JSON.stringify(fakeKey(2))}]\n`, 3);
    expect((await handedOff.apply()).outcome).toBe("updated");
    expect(calls).toEqual(["disable ssh.service", "enable ssh.service"]);
  } finally {
    handedOff.stop();
  }
});
