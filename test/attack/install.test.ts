/**
 * Attack tests of `hero-init install` (issue 13, findings 8 and 9): the
 * attacker is a careless operator (a wrong `--key`) or a manifest
 * publisher (service names and install paths that climb out of `--root`
 * or add lines to a systemd unit or a zinit service file). The defence:
 * nothing persists from a refused run, and no manifest field reaches a path
 * outside the root or a new line of unit text.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runInstallCli } from "../../cli/update.ts";
import { formatPublicKey, generateKey } from "../../lib/minisign.ts";
import { publishSigned } from "../../update/publish.ts";
import { type Fixture, machineKeyLine, makeFixture, snapshot } from "../helpers/update-fixture.ts";

let f: Fixture;
beforeEach(async () => {
  f = await makeFixture();
});
afterEach(() => f.close());

const install = (key: string) =>
  runInstallCli([
    "--manifest",
    f.source.manifestUrl,
    "--key",
    key,
    "--role",
    "node",
    "--root",
    f.root,
  ]);

/** Publishes a hand-written, correctly signed manifest with one node binary and `extra` TOML lines. */
function publishRaw(extra: string, o: { expires?: Date } = {}): void {
  const data = "beta one\n";
  const dir = join(f.pub, "node/beta/1.0.0");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "beta"), data);
  const text = `version = 7
expires = ${(o.expires ?? new Date(Date.now() + 86400_000)).toISOString().replace(/\.\d+Z$/, "Z")}

[[node.binaries]]
name = "beta"
version = "1.0.0"
url = "${f.server.url}node/beta/1.0.0/beta"
sha256 = "${createHash("sha256").update(data).digest("hex")}"
size = ${data.length}
${extra}
`;
  publishSigned(join(f.pub, "bootstrapper.toml"), new TextEncoder().encode(text), f.key, "t");
}

/** Every file under `dir` whose text has a line starting with `prefix`. */
function linesStarting(dir: string, prefix: RegExp): string[] {
  const hits: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (
        e.isFile() &&
        readFileSync(p, "utf8")
          .split("\n")
          .some((l) => prefix.test(l))
      )
        hits.push(p);
    }
  };
  walk(dir);
  return hits;
}

describe("finding 8: nothing persists from a refused install", () => {
  test("a wrong --key is refused, --root is byte-identical, and the right key then installs", async () => {
    f.addBinary("beta", "1.0.0", "beta one\n", ["beta"], "node");
    f.publish(1);
    mkdirSync(join(f.root, "etc/zinit"), { recursive: true });
    const before = snapshot(f.root);
    const wrong = machineKeyLine(generateKey());
    expect(await install(wrong)).toBe(1);
    expect(snapshot(f.root)).toEqual(before);
    // The operator notices and runs the same command with the right key.
    expect(await install(machineKeyLine(f.key))).toBe(0);
    expect(readFileSync(join(f.root, "usr/lib/hero/pkgs/beta/1.0.0/beta"), "utf8")).toBe(
      "beta one\n",
    );
    expect(readFileSync(join(f.root, "var/lib/hero-init/update/keys.pub"), "utf8").trim()).toBe(
      machineKeyLine(f.key),
    );
  });

  test("a wrong key given as a .pub file is refused the same way", async () => {
    f.addBinary("beta", "1.0.0", "beta one\n", ["beta"], "node");
    f.publish(1);
    const pubFile = join(f.dir, "other.pub");
    writeFileSync(pubFile, formatPublicKey(generateKey()));
    const before = snapshot(f.root);
    expect(await install(pubFile)).toBe(1);
    expect(snapshot(f.root)).toEqual(before);
    expect(await install(machineKeyLine(f.key))).toBe(0);
  });

  test("an expired manifest (signed with the right key) is refused and leaves nothing", async () => {
    publishRaw('services = ["beta"]', { expires: new Date(Date.now() - 3600_000) });
    const before = snapshot(f.root);
    expect(await install(machineKeyLine(f.key))).toBe(1);
    expect(snapshot(f.root)).toEqual(before);
  });
});

describe("finding 9: manifest names never leave --root or add unit lines", () => {
  test('a service named "../../../escaped" is refused and nothing is written outside --root', async () => {
    mkdirSync(join(f.root, "etc/zinit"), { recursive: true });
    publishRaw('services = ["../../../escaped"]');
    const before = snapshot(f.root);
    const code = await install(machineKeyLine(f.key));
    expect(existsSync(join(f.dir, "escaped.yaml"))).toBe(false);
    expect(code).toBe(1);
    expect(snapshot(f.root)).toEqual(before);
  });

  test("a service name with a newline cannot add ExecStartPre= to a systemd unit", async () => {
    mkdirSync(join(f.root, "run/systemd/system"), { recursive: true });
    publishRaw('services = ["beta\\nExecStartPre=touch pwned"]');
    const before = snapshot(f.root);
    const code = await install(machineKeyLine(f.key));
    expect(linesStarting(f.root, /^ExecStartPre=/)).toEqual([]);
    expect(code).toBe(1);
    expect(snapshot(f.root)).toEqual(before);
  });

  test("an install path with a newline cannot add a line to a unit or a zinit file", async () => {
    mkdirSync(join(f.root, "run/systemd/system"), { recursive: true });
    publishRaw('services = ["beta"]\npath = "/usr/bin/beta\\nExecStartPost=/bin/sh -c id"');
    const before = snapshot(f.root);
    const code = await install(machineKeyLine(f.key));
    expect(linesStarting(f.root, /^ExecStartPost=/)).toEqual([]);
    expect(code).toBe(1);
    expect(snapshot(f.root)).toEqual(before);
  });

  test("the same path into a zinit service file cannot add a key", async () => {
    mkdirSync(join(f.root, "etc/zinit"), { recursive: true });
    publishRaw('services = ["beta"]\npath = "/usr/bin/beta\\nafter: [x]"');
    const code = await install(machineKeyLine(f.key));
    expect(linesStarting(f.root, /^after:/)).toEqual([]);
    expect(code).toBe(1);
  });
});
