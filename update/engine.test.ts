/**
 * The update engine against a real `hero-init serve`: installs, unchanged
 * polls, a single changed binary, and the attack suite in the style of
 * TUF's conformance tests, each ending with nothing changed on the machine.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKey, signMessage } from "../lib/minisign.ts";
import {
  type Fixture,
  machineKeyLine,
  makeFixture,
  snapshot,
} from "../test/helpers/update-fixture.ts";
import { runUpdate, type UpdateHooks } from "./engine.ts";
import { keySetText } from "./publish.ts";
import type { FetchFn } from "./request.ts";

let f: Fixture;
let restarts: string[][];
let unhealthy: string[];
const logs: string[] = [];
const hooks: UpdateHooks = {
  restart: async (s) => {
    restarts.push(s);
  },
  health: async (s) => s.filter((x) => unhealthy.includes(x)),
  log: (m) => logs.push(m),
};

beforeEach(async () => {
  f = await makeFixture();
  restarts = [];
  unhealthy = [];
  f.addBinary("alpha", "1.0.0", "alpha one\n", ["alpha"]);
  f.addBinary("beta", "1.0.0", "beta one\n", ["beta"]);
  f.addBinary("gamma", "1.0.0", "gamma one\n", ["gamma", "gamma-sidecar"]);
  f.publish(1);
});
afterEach(() => f.close());

const run = (o: Parameters<typeof runUpdate>[3] = {}) => runUpdate(f.source, f.paths, hooks, o);
/** The content /usr/bin/<name> resolves to inside the machine root (its links are absolute). */
const installedText = (name: string) =>
  readFileSync(join(f.root, readlinkSync(join(f.root, "usr/bin", name))), "utf8");
const artifactRequests = () => f.access.filter((l) => / \/vm\//.test(l));
/** The machine minus the updater's own state: what an attack must leave untouched. */
const machine = () => snapshot(f.root, [f.paths.stateDir]);

describe("update engine", () => {
  test("a fresh machine installs every binary, linked through current", async () => {
    const r = await run();
    expect(r.outcome).toBe("updated");
    expect(r.manifestVersion).toBe(1);
    expect(installedText("alpha")).toBe("alpha one\n");
    expect(readlinkSync(join(f.root, "usr/bin/gamma"))).toBe(
      "/usr/lib/hero/pkgs/gamma/current/gamma",
    );
    expect(readlinkSync(join(f.paths.pkgs, "gamma/current"))).toBe("1.0.0");
    expect(restarts).toEqual([["alpha", "beta", "gamma", "gamma-sidecar"]]);
  });

  test("an unchanged manifest costs one 304 and no artifact request", async () => {
    await run();
    f.access.length = 0;
    const r = await run();
    expect(r.outcome).toBe("unchanged");
    expect(f.access.length).toBe(1);
    expect(f.access[0]).toMatch(/GET \/bootstrapper\.toml 304/);
    expect(r.requests).toBe(1);
    expect(r.bytes).toBe(0);
  });

  test("one of three binaries changed: only it is fetched, only its services restart, the old one is removed", async () => {
    await run();
    restarts = [];
    f.addBinary("beta", "1.1.0", "beta two\n", ["beta"]);
    f.publish(2);
    f.access.length = 0;
    const r = await run();
    expect(r.outcome).toBe("updated");
    expect(r.changes).toEqual([{ name: "beta", from: "1.0.0", to: "1.1.0", services: ["beta"] }]);
    expect(artifactRequests().map((l) => l.split(" ")[2])).toEqual(["/vm/beta/1.1.0/beta"]);
    expect(restarts).toEqual([["beta"]]);
    expect(installedText("beta")).toBe("beta two\n");
    expect(snapshot(join(f.paths.pkgs, "beta"))).not.toHaveProperty(
      join(f.paths.pkgs, "beta/1.0.0"),
    );
  });

  test("a machine follows its environment's section; another environment resolves differently", async () => {
    const d = join(f.pub, "env/canary/vm/alpha/2.0.0");
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, "alpha"), "alpha canary\n");
    f.publish(1);
    const canary = await runUpdate({ ...f.source, env: "canary" }, f.paths, hooks);
    expect(canary.outcome).toBe("updated");
    expect(installedText("alpha")).toBe("alpha canary\n");
    const prod = await runUpdate({ ...f.source, env: "production" }, f.paths, hooks, {
      check: true,
    });
    expect(prod.changes).toEqual([
      { name: "alpha", from: "2.0.0", to: "1.0.0", services: ["alpha"] },
    ]);
  });

  test("--check reports what would change and changes nothing", async () => {
    await run();
    f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
    f.publish(2);
    const before = machine();
    const r = await run({ check: true });
    expect(r.outcome).toBe("available");
    expect(r.changes.map((c) => `${c.name} ${c.from} ${c.to}`)).toEqual(["alpha 1.0.0 2.0.0"]);
    expect(machine()).toEqual(before);
  });

  test("not enough free space: refused before any download, nothing changed", async () => {
    await run();
    f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
    f.publish(2);
    const before = machine();
    f.access.length = 0;
    const r = await run({ spareBytes: 2 ** 60 });
    expect(r.outcome).toBe("failed");
    expect(r.code).toBe("space");
    expect(r.error).toMatch(/not enough space in .*pkgs: \d+ bytes free/);
    expect(artifactRequests()).toEqual([]);
    expect(machine()).toEqual(before);
  });

  test("an unhealthy service after the update rolls the binary back", async () => {
    await run();
    restarts = [];
    f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
    f.publish(2);
    unhealthy = ["alpha"];
    const r = await run();
    expect(r.outcome).toBe("rolled-back");
    expect(installedText("alpha")).toBe("alpha one\n");
    expect(restarts).toEqual([["alpha"], ["alpha"]]);
    // The failed version is not retried on every poll; a newer one is.
    const again = await run();
    expect(again.outcome).toBe("unchanged");
    expect(again.held).toEqual([
      { name: "alpha", version: "1.0.0", reason: "2.0.0 failed on this machine before" },
    ]);
    unhealthy = [];
    f.addBinary("alpha", "2.0.1", "alpha fixed\n", ["alpha"]);
    f.publish(3);
    expect((await run()).outcome).toBe("updated");
    expect(installedText("alpha")).toBe("alpha fixed\n");
    expect(snapshot(join(f.paths.pkgs, "alpha"))).not.toHaveProperty(
      join(f.paths.pkgs, "alpha/2.0.0"),
    );
  });
});

describe("attacks: each is refused and the machine is unchanged", () => {
  /** Installs v1, stages a v2 with a changed alpha, lets `tamper` attack, runs, and checks nothing changed. */
  async function attack(
    tamper: () => void,
    o: Parameters<typeof runUpdate>[3] = {},
    partialAllowed = false,
  ) {
    await run();
    f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
    f.publish(2);
    tamper();
    const before = machine();
    restarts = [];
    const r = await run(o);
    const staged = join(f.paths.pkgs, "alpha/2.0.0");
    const after = machine();
    if (partialAllowed) {
      // A slow or cut transfer may leave its .part for a resume: nothing that runs.
      for (const k of Object.keys(after))
        if (k.startsWith(staged)) {
          expect(k === staged || /\.part(\.meta)?$/.test(k)).toBe(true);
          delete after[k];
        }
    }
    expect(after).toEqual(before);
    expect(restarts).toEqual([]);
    expect(installedText("alpha")).toBe("alpha one\n");
    return r;
  }
  const flip = (file: string, at: number) => {
    const b = readFileSync(file);
    b[at % b.length] = (b[at % b.length] as number) ^ 0x01;
    writeFileSync(file, b);
  };

  test("bit flip in the manifest", async () => {
    const r = await attack(() => flip(join(f.pub, "bootstrapper.toml"), 200));
    expect(r.outcome).toBe("refused");
    expect(r.code).toBe("bad-signature");
    expect(r.error).toMatch(/bad signature/);
  });

  test("bit flip in the signature", async () => {
    const r = await attack(() => {
      const p = join(f.pub, "bootstrapper.toml.minisig");
      const lines = readFileSync(p, "utf8").split("\n");
      const sig = Buffer.from(lines[1] as string, "base64");
      sig[40] = (sig[40] as number) ^ 0x80;
      lines[1] = sig.toString("base64");
      writeFileSync(p, lines.join("\n"));
    });
    expect(r.outcome).toBe("refused");
    expect(r.error).toMatch(/bad signature/);
  });

  test("bit flip in the binary", async () => {
    const r = await attack(() => flip(join(f.pub, "vm/alpha/2.0.0/alpha"), 3));
    expect(r.outcome).toBe("failed");
    expect(r.code).toBe("download");
    expect(r.error).toMatch(/sha256|hash/);
  });

  test("wrong key", async () => {
    const r = await attack(() => f.publish(2, { key: generateKey() }));
    expect(r.outcome).toBe("refused");
    expect(r.code).toBe("untrusted-key");
  });

  test("rollback to a lower version, validly signed", async () => {
    await run();
    f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
    f.publish(5);
    expect((await run()).outcome).toBe("updated");
    const old = f.publish(4);
    expect(old).toContain("version = 4");
    const before = machine();
    const r = await run();
    expect(r.outcome).toBe("refused");
    expect(r.code).toBe("rollback");
    expect(r.error).toMatch(/version 4, older than the trusted version 5/);
    expect(machine()).toEqual(before);
  });

  test("expired manifest (freeze), judged by the clock fixed at the start", async () => {
    const r = await attack(() => f.publish(2, { expires: new Date(Date.now() - 1000) }));
    expect(r.outcome).toBe("refused");
    expect(r.code).toBe("expired");
    const late = await run({ now: new Date(Date.now() + 2 * 86400_000) });
    expect(late.code).toBe("expired");
  });

  test("endless data is cut at the manifest's size", async () => {
    const endless: FetchFn = async (url, init) => {
      if (!url.includes("/vm/alpha/2.0.0/")) return fetch(url, init);
      let sent = 0;
      const body = new ReadableStream<Uint8Array>({
        pull(c) {
          sent += 65536;
          c.enqueue(new Uint8Array(65536));
          if (sent > 64 << 20) c.close();
        },
      });
      return new Response(body, { status: 200 });
    };
    const r = await attack(() => {}, { fetch: endless, download: { maxRetries: 0 } });
    expect(r.outcome).toBe("failed");
    expect(r.error).toMatch(/more than|too large|exceed/i);
    expect(r.bytes).toBeLessThan(1 << 20);
  });

  test("slow retrieval is aborted below the minimum rate", async () => {
    const slow: FetchFn = async (url, init) => {
      if (!url.includes("/vm/alpha/2.0.0/")) return fetch(url, init);
      const body = new ReadableStream<Uint8Array>({
        async pull(c) {
          await Bun.sleep(100);
          c.enqueue(new Uint8Array(1));
        },
      });
      return new Response(body, { status: 200, headers: { "content-length": "10" } });
    };
    const r = await attack(
      () => {},
      {
        fetch: slow,
        download: { maxRetries: 0, minRate: { bytesPerSec: 1000, windowMs: 300 } },
      },
      true,
    );
    expect(r.outcome).toBe("failed");
    expect(r.error).toMatch(/below the minimum 1000 B\/s/);
  });

  test("mix and match: an old validly signed binary under the new name, an old signature with the new manifest", async () => {
    const r = await attack(() =>
      writeFileSync(join(f.pub, "vm/alpha/2.0.0/alpha"), "alpha one\n".padEnd(10, "x")),
    );
    expect(r.outcome).toBe("failed");
    const oldSig = readFileSync(join(f.pub, "bootstrapper.toml.minisig"), "utf8");
    f.addBinary("alpha", "3.0.0", "alpha three\n", ["alpha"]);
    f.publish(3);
    writeFileSync(join(f.pub, "bootstrapper.toml.minisig"), oldSig);
    const before = machine();
    const r2 = await run();
    expect(r2.outcome).toBe("refused");
    expect(r2.error).toMatch(/bad signature/);
    expect(machine()).toEqual(before);
  });

  test("a binary named ../../sbin/init is refused by the schema", async () => {
    const r = await attack(() => {
      const p = join(f.pub, "bootstrapper.toml");
      const text = readFileSync(p, "utf8").replace('name = "alpha"', 'name = "../../sbin/init"');
      writeFileSync(p, text);
      writeFileSync(`${p}.minisig`, signMessage(f.key, new TextEncoder().encode(text), "t"));
    });
    expect(r.outcome).toBe("refused");
    expect(r.code).toBe("schema");
    expect(r.error).toMatch(/must be a file name/);
  });
});

describe("key rotation", () => {
  test("a new key set signed by the old key is adopted", async () => {
    await run();
    const next = generateKey();
    const ks = new TextEncoder().encode(keySetText(2, [machineKeyLine(next)]));
    writeFileSync(join(f.pub, "keys.toml"), ks);
    writeFileSync(join(f.pub, "keys.toml.minisig"), signMessage(f.key, ks, "rotation"));
    f.addBinary("alpha", "2.0.0", "alpha two\n", ["alpha"]);
    f.publish(2, { key: next });
    const r = await run();
    expect(r.outcome).toBe("updated");
    expect(readFileSync(f.paths.keysFile, "utf8").trim()).toBe(machineKeyLine(next));
    // The old key is no longer trusted.
    f.publish(3);
    expect((await run()).code).toBe("untrusted-key");
  });

  test("a key set signed only by the new key is refused", async () => {
    await run();
    const next = generateKey();
    const ks = new TextEncoder().encode(keySetText(2, [machineKeyLine(next)]));
    writeFileSync(join(f.pub, "keys.toml"), ks);
    writeFileSync(join(f.pub, "keys.toml.minisig"), signMessage(next, ks, "self-signed"));
    f.publish(2, { key: next });
    const keysBefore = readFileSync(f.paths.keysFile, "utf8");
    const r = await run();
    expect(r.code).toBe("untrusted-key");
    expect(r.error).toMatch(/keys\.toml does not verify/);
    expect(readFileSync(f.paths.keysFile, "utf8")).toBe(keysBefore);
  });
});
