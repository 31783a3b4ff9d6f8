/**
 * The updater as PID 1 runs it, outside a VM: a real supervisor, the real
 * control socket with update_check / update_apply, and `hero-init update`
 * as the client, against `hero-init serve` (the fixture's server).
 */
import { afterEach, beforeEach, describe, expect, spyOn, test } from "bun:test";
import { readlinkSync } from "node:fs";
import { join } from "node:path";
import { runUpdateCli } from "../../cli/update.ts";
import { type Fixture, machineKeyLine, makeFixture } from "../../test/helpers/update-fixture.ts";
import { controlApi } from "../control/api.ts";
import { startControlServer } from "../control/server.ts";
import { createSupervisor } from "../supervisor/supervisor.ts";
import { nextDelay, startUpdater, type Updater, updateControl } from "./updater.ts";

describe("nextDelay (pure)", () => {
  test("stays within interval ± jitter", () => {
    expect(nextDelay(3600, 0.1, () => 0)).toBe(3240_000);
    expect(nextDelay(3600, 0.1, () => 1)).toBeCloseTo(3960_000);
    expect(nextDelay(3600, 0, Math.random)).toBe(3600_000);
  });
});

describe("update_check / update_apply over the control socket", () => {
  let f: Fixture;
  let stop: () => void;
  let updater: Updater;
  let sock: string;
  beforeEach(async () => {
    f = await makeFixture();
    f.addBinary("alpha", "1.0.0", "alpha one\n", ["alpha"]);
    f.publish(1);
    const sup = createSupervisor({ cgroups: false });
    updater = startUpdater(
      {
        manifest: f.source.manifestUrl,
        key: machineKeyLine(f.key),
        interval: 0,
        jitter: 0,
        pins: [],
        health_seconds: 0,
      },
      sup,
      { stateDir: f.paths.stateDir, pkgs: f.paths.pkgs, root: f.root },
    );
    const api = controlApi(sup, join(f.dir, "services"), { shutdown() {}, reboot() {} });
    api.update = updateControl(() => updater);
    sock = join(f.dir, "zinit.sock");
    stop = startControlServer(api, [sock], () => ({}));
  });
  afterEach(async () => {
    stop();
    updater.stop();
    await f.close();
  });

  async function cli(args: string[]): Promise<{ code: number; out: string }> {
    let out = "";
    const spy = spyOn(process.stdout, "write").mockImplementation((s: unknown) => {
      out += String(s);
      return true;
    });
    try {
      return { code: await runUpdateCli([...args, "-s", sock]), out };
    } finally {
      spy.mockRestore();
    }
  }

  test("--check reports, apply installs, a second apply is up to date", async () => {
    const check = await cli(["--check", "--json"]);
    expect(check.code).toBe(0);
    expect(JSON.parse(check.out)).toMatchObject({
      outcome: "available",
      changes: [{ name: "alpha", to: "1.0.0" }],
    });
    const apply = await cli([]);
    expect(apply).toEqual({ code: 0, out: "manifest 1: updated (alpha - → 1.0.0)\n" });
    expect(readlinkSync(join(f.paths.pkgs, "alpha/current"))).toBe("1.0.0");
    expect((await cli([])).out).toBe("manifest 1: unchanged\n");
    expect(updater.last()?.result.outcome).toBe("unchanged");
  });

  test("a refused manifest exits 1 with the reason", async () => {
    f.publish(2, { expires: new Date(Date.now() - 1000) });
    const r = await cli([]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/refused: the manifest expired at/);
  });
});
