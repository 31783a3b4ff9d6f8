import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultVmConfig } from "../../lib/vm-config.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { startSupervision } from "./supervision.ts";

const root = mkdtempSync(join(tmpdir(), "hero-supervision-"));
const started: Supervisor[] = [];
afterAll(async () => {
  await Promise.all(started.map((s) => s.shutdownAll()));
  rmSync(root, { recursive: true, force: true });
});

/** A supervision over its own dir of `n` oneshot services and its own control socket. */
function supervision(name: string, n = 4) {
  const dir = join(root, name);
  mkdirSync(dir);
  for (let i = 0; i < n; i++)
    writeFileSync(join(dir, `s${i}.yaml`), "exec: /bin/true\noneshot: true\n");
  const s = startSupervision({
    config: defaultVmConfig(),
    configDir: dir,
    sockets: [join(root, `${name}.sock`)],
    cgroups: false,
    power: () => {},
  });
  started.push(s.sup);
  return s;
}

describe("startSupervision: the services start when PID 1 says so", () => {
  test("none before startServices (PID 1 calls it after READY)", () => {
    expect(supervision("before").sup.names()).toEqual([]);
  });

  test("gradually by default: not all at the call's return, all once it resolves", async () => {
    const s = supervision("gradual");
    const done = s.startServices();
    expect(s.sup.names().length).toBeLessThan(4);
    await done;
    expect(s.sup.names()).toEqual(["s0", "s1", "s2", "s3"]);
    expect(s.startServices()).toBe(done);
  });

  test("all at once for a resume (gradual false): every service is there when it returns", () => {
    const s = supervision("resume");
    void s.startServices(false);
    expect(s.sup.names()).toEqual(["s0", "s1", "s2", "s3"]);
  });
});
