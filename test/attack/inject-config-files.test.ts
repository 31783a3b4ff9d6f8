/**
 * Attacker: a manifest's `[[vm.files]]` entry and the image it is injected
 * into (issue 20: config files written at deploy time). The entry's path
 * climbs out with `..`; the image plants links on the way (/etc/app ->
 * a host directory, absolute or `../`), at the file itself (/etc/app.conf ->
 * a host file), or at its account files (/etc/passwd -> the host's), so a
 * naive writer would write, or resolve owners, on the host. Defence: the
 * manifest schema and the plan refuse unclean paths (lib/config-files.ts,
 * host/plan.ts); every path, and the image's /etc/passwd and /etc/group,
 * are resolved inside the rootfs as the booted VM resolves them
 * (host/root-path.ts, host/inspect.ts); a link at the file itself is
 * replaced, never followed. The host directory is compared before and after.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type InjectOptions, inject } from "../../host/inject.ts";
import { isHeroError } from "../../lib/errors.ts";
import { attempt } from "../helpers/inject-attempt.ts";
import { snapshot } from "../snapshot.ts";

const dir = mkdtempSync(join(tmpdir(), "hero-attack-files-"));
/** The host's side: nothing may appear or change here. */
const outside = join(dir, "host-side");
let n = 0;

/** A rootfs with its own accounts (user "web" is 33 here). */
function rootfs(): string {
  const root = join(dir, `root-${n++}`);
  mkdirSync(join(root, "etc"), { recursive: true });
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/:/bin/false\n");
  writeFileSync(join(root, "etc/group"), "root:x:0:\nweb:x:33:\n");
  return root;
}

function manifest(entry: string): string {
  const at = join(dir, `m-${n++}.toml`);
  writeFileSync(at, `version = 1\n[[vm.files]]\n${entry}\n`);
  return at;
}

const opts = (target: string, m: string): InjectOptions => ({
  format: "dir",
  target,
  manifest: m,
  heroInit: join(dir, "hero-init"),
  preinit: join(dir, "preinit"),
  privateLoader: "never",
  cacheDir: join(dir, "cache"),
  mtime: 1_700_000_000,
});

beforeAll(() => {
  writeFileSync(join(dir, "hero-init"), "HERO-INIT\n");
  writeFileSync(join(dir, "preinit"), "PREINIT\n");
  mkdirSync(join(outside, "etc"), { recursive: true });
  writeFileSync(join(outside, "victim.conf"), "host data\n");
  // A passwd on the host side where "intruder" exists: it must never be consulted.
  writeFileSync(join(outside, "etc/passwd"), "intruder:x:4444:4444::/:/bin/sh\n");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("a hostile config file entry", () => {
  for (const p of ["/etc/../../host-side/x.conf", "/etc/app/../../../x.conf", "/etc/./x.conf"])
    test(`a path that climbs out (${p}) is refused naming the field; nothing written anywhere`, async () => {
      const root = rootfs();
      const [host, tree] = [snapshot(outside), snapshot(root)];
      const err = await attempt(opts(root, manifest(`path = "${p}"\ncontent = "pwned"`)));
      expect(isHeroError(err, "input")).toBe(true);
      expect(String(err)).toContain("vm.files.0.path");
      expect(snapshot(outside)).toEqual(host);
      expect(snapshot(root)).toEqual(tree);
    });

  for (const [kind, link] of [
    ["absolute", outside],
    ["relative", `../../../../../../../../..${outside}`],
  ] as const)
    test(`a planted /etc/app -> the host (${kind}) is resolved inside the rootfs, never on the host`, async () => {
      const root = rootfs();
      symlinkSync(link, join(root, "etc/app"));
      const host = snapshot(outside);
      const m = manifest(`path = "/etc/app/victim.conf"\ncontent = "pwned"\nowner = "web"`);
      // Where the link leads inside the rootfs does not exist: refused as dangling.
      const err = await attempt(opts(root, m));
      expect(isHeroError(err, "input")).toBe(true);
      expect(String(err)).toContain("dangling");
      expect(snapshot(outside)).toEqual(host);
      // Once it exists inside the rootfs, the file lands there (as the VM will see it).
      mkdirSync(join(root, outside), { recursive: true });
      await inject(opts(root, m));
      expect(readFileSync(join(root, outside, "victim.conf"), "utf8")).toBe("pwned");
      expect(statSync(join(root, outside, "victim.conf")).uid).toBe(33);
      expect(readlinkSync(join(root, "etc/app"))).toBe(link);
      expect(snapshot(outside)).toEqual(host);
      expect(readFileSync(join(outside, "victim.conf"), "utf8")).toBe("host data\n");
    });

  test("a planted /etc/app.conf -> a host file is replaced by the file, never written through", async () => {
    const root = rootfs();
    symlinkSync(join(outside, "victim.conf"), join(root, "etc/app.conf"));
    const host = snapshot(outside);
    await inject(opts(root, manifest(`path = "/etc/app.conf"\ncontent = "mine\\n"`)));
    expect(lstatSync(join(root, "etc/app.conf")).isFile()).toBe(true);
    expect(readFileSync(join(root, "etc/app.conf"), "utf8")).toBe("mine\n");
    expect(snapshot(outside)).toEqual(host);
  });

  test("a planted /etc/passwd -> the host's: owners are looked up inside the rootfs only", async () => {
    const root = rootfs();
    rmSync(join(root, "etc/passwd"));
    symlinkSync(join(outside, "etc/passwd"), join(root, "etc/passwd"));
    const tree = snapshot(root);
    const err = await attempt(
      opts(root, manifest(`path = "/etc/x.conf"\ncontent = "x"\nowner = "intruder"`)),
    );
    expect(isHeroError(err, "input")).toBe(true);
    expect(String(err)).toContain("vm.files.0.owner");
    expect(String(err)).toContain(`user "intruder" is not in the image's /etc/passwd`);
    expect(snapshot(root)).toEqual(tree);
  });

  test("an 8 GiB /etc/passwd (sparse) is refused by its size, before it is read; nothing written", async () => {
    // Reading it (as the check after a full read did) needs 8 GiB of host memory.
    const root = rootfs();
    truncateSync(join(root, "etc/passwd"), 8 * 1024 ** 3);
    const err = await attempt(
      opts(root, manifest(`path = "/etc/x.conf"\ncontent = "x"\nowner = "web"`)),
    );
    expect(isHeroError(err, "input.image")).toBe(true);
    expect(String(err)).toContain("/etc/passwd in the image is over 4194304 bytes (8589934592)");
    expect(existsSync(join(root, "etc/x.conf"))).toBe(false);
    expect(existsSync(join(root, "sbin/init"))).toBe(false);
  });

  test("a content hash the download does not match: nothing written, nothing cached", async () => {
    const root = rootfs();
    const data = "evil payload\n";
    writeFileSync(join(dir, "payload"), data);
    const claimed = createHash("sha256").update("benign\n").digest("hex");
    const m = manifest(
      `path = "/etc/x.conf"\nurl = "file://${join(dir, "payload")}"\nsha256 = "${claimed}"\nsize = ${data.length}`,
    );
    const tree = snapshot(root);
    const err = await attempt(opts(root, m));
    expect(isHeroError(err, "input")).toBe(true);
    expect(String(err)).toContain("vm.files.0.sha256");
    expect(snapshot(root)).toEqual(tree);
    expect(() => statSync(join(dir, "cache/sha256", claimed))).toThrow();
  });
});
