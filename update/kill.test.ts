/**
 * kill -9 of the updater at every step, and in the middle of a download:
 * every install path still resolves to a complete binary (old or new, never
 * partial), and the next run converges (resuming the interrupted download).
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Fixture, makeFixture } from "../test/helpers/update-fixture.ts";

const BUN = process.execPath;
const CHILD = join(import.meta.dir, "../test/helpers/kill-child.ts");
let f: Fixture;
const sha = (b: Uint8Array | string) => createHash("sha256").update(b).digest("hex");
const big1 = randomBytes(4 << 20).toString("base64");
const big2 = randomBytes(4 << 20).toString("base64");

beforeEach(async () => {
  f = await makeFixture();
  f.addBinary("alpha", "1.0.0", "alpha one\n", ["alpha"]);
  f.addBinary("big", "1.0.0", big1, ["big"]);
  f.publish(1);
});
afterEach(() => f.close());

function runChild(extra: Record<string, unknown> = {}) {
  return Bun.spawn([BUN, CHILD, JSON.stringify({ source: f.source, paths: f.paths, ...extra })], {
    stdout: "pipe",
    stderr: "pipe",
  });
}

/** sha256 of what /usr/bin/<name> resolves to inside the root. */
function installed(name: string): string {
  const target = readlinkSync(join(f.root, "usr/bin", name));
  return sha(readFileSync(join(f.root, target)));
}

async function converge() {
  const p = runChild();
  expect(await p.exited).toBe(0);
  return JSON.parse(await new Response(p.stdout).text()) as {
    outcome: string;
    changes: unknown[];
    restarted: string[];
  };
}

describe("kill -9 of the updater", () => {
  for (const step of [
    "poll",
    "signature",
    "trust",
    "download big",
    "switch",
    "restart",
    "cleanup",
  ]) {
    test(`at "${step}": old or new binaries, never partial; the next run converges`, async () => {
      await converge();
      f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
      f.addBinary("big", "2.0.0", big2, ["big"]);
      f.publish(2);
      const p = runChild({ killAt: step });
      expect(await p.exited).not.toBe(0);
      expect(p.signalCode).toBe("SIGKILL");
      expect([sha("alpha one\n"), sha("alpha two\n")]).toContain(installed("alpha"));
      expect([sha(big1), sha(big2)]).toContain(installed("big"));
      const r = await converge();
      expect(r.outcome).toBe("updated");
      // Killed before the services were restarted: the next run restarts them.
      if (step === "switch" || step === "restart") expect(r.restarted).toEqual(["alpha", "big"]);
      expect(installed("alpha")).toBe(sha("alpha two\n"));
      expect(installed("big")).toBe(sha(big2));
    });
  }

  test("in the middle of a download: the next run resumes with Range and converges", async () => {
    await converge();
    f.addBinary("big", "2.0.0", big2, ["big"]);
    f.publish(2);
    const p = runChild({ throttleMs: 20 });
    // ~5.6 MB in 64 KiB chunks every 20 ms: about 1.7 s; kill once some of it
    // has arrived (a .part with bytes in it), not after a fixed time.
    const partBytes = () => {
      let n = 0;
      for (const e of readdirSync(f.root, { recursive: true, withFileTypes: true }))
        if (e.isFile() && e.name.endsWith(".part"))
          n = Math.max(n, statSync(join(e.parentPath, e.name)).size);
      return n;
    };
    for (let i = 0; i < 500 && partBytes() === 0; i++) await Bun.sleep(10);
    expect(partBytes()).toBeGreaterThan(0);
    p.kill("SIGKILL");
    await p.exited;
    expect(installed("big")).toBe(sha(big1));
    f.access.length = 0;
    const r = await converge();
    expect(r.outcome).toBe("updated");
    expect(installed("big")).toBe(sha(big2));
    expect(f.access.some((l) => / \/vm\/big\/2\.0\.0\/big 206 /.test(l))).toBe(true);
  });
});
