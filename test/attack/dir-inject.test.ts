/**
 * Attacker (or careless author): the rootfs directory an operator injects
 * hero-init into, with links the booted VM will resolve differently from a
 * naive writer: `/usr/lib -> /opt/missing` (absolute or `../`), a dangling
 * `/usr/lib/hero`, and a write that fails half-way. Defence: paths are
 * resolved the way the guest will (one resolver, host/root-path.ts,
 * shared with ext4), a dangling link on a path hero-init writes is refused
 * before the first write, every write is planned first and applied with a
 * journal that is rolled back on any error. The rootfs is compared entry by
 * entry (path, type, mode, owner, link target, content hash) before and after.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type InjectOptions, inject } from "../../host/inject.ts";
import { isHeroError } from "../../lib/errors.ts";
import { attempt } from "../helpers/inject-attempt.ts";
import { snapshot } from "../snapshot.ts";

setDefaultTimeout(120_000);
const dir = mkdtempSync(join(tmpdir(), "hero-attack-dir-"));
const isRoot = process.getuid?.() === 0;
/** Directories made unwritable by a test, made writable again before cleanup. */
const locked: string[] = [];

function run(cmd: string[]): string {
  const p = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed: ${p.stderr.toString()}`);
  return p.stdout.toString();
}

/** A small rootfs: busybox (to look at it from inside, chrooted), /sbin/init, /usr/lib. */
function rootfs(name: string): string {
  const root = join(dir, name);
  for (const d of ["bin", "sbin", "usr/bin", "usr/lib", "etc"])
    mkdirSync(join(root, d), { recursive: true });
  run(["cp", "/bin/busybox", join(root, "bin/busybox")]);
  writeFileSync(join(root, "sbin/init"), "#!/bin/sh\necho original init\n", { mode: 0o755 });
  return root;
}

/** Runs busybox `args` inside `root` as the booted VM would resolve paths (chroot; a user namespace when not root). */
function inGuest(root: string, ...args: string[]): string {
  const pre = isRoot ? ["chroot"] : ["unshare", "-r", "chroot"];
  return run([...pre, root, "/bin/busybox", ...args]);
}

let opts: Omit<InjectOptions, "target">;

beforeAll(() => {
  for (const t of ["/bin/busybox", ...(isRoot ? ["/usr/bin/chattr"] : [])])
    if (!Bun.file(t).size) throw new Error(`${t} is needed by this test and missing`);
  writeFileSync(join(dir, "hero-init"), "HERO-INIT\n");
  writeFileSync(join(dir, "preinit"), "PREINIT\n");
  opts = {
    format: "dir",
    heroInit: join(dir, "hero-init"),
    preinit: join(dir, "preinit"),
    privateLoader: "never",
    vmConfig: `hostname = "victim"\n`,
    mtime: 1_700_000_000,
  };
});
afterAll(() => {
  for (const d of locked) {
    if (isRoot) Bun.spawnSync(["chattr", "-i", d]);
    else Bun.spawnSync(["chmod", "0755", d]);
  }
  rmSync(dir, { recursive: true, force: true });
});

describe("a rootfs directory with hostile links", () => {
  for (const [kind, target] of [
    ["absolute", "/opt/missing"],
    ["relative", "../../opt/missing"],
  ] as const) {
    test(`a dangling /usr/lib (${kind}: ${target}) is refused and the rootfs left as it was`, async () => {
      const root = rootfs(`dangling-${kind}`);
      rmSync(join(root, "usr/lib"), { recursive: true });
      symlinkSync(target, join(root, "usr/lib"));
      const before = snapshot(root);
      const err = await attempt({ ...opts, target: root });
      expect(snapshot(root)).toEqual(before);
      expect(isHeroError(err, "input")).toBe(true);
      expect(String(err)).toContain(`/usr/lib in the rootfs is a symlink to ${target}`);
      expect(String(err)).toContain("dangling");
    });
  }

  test("a dangling /usr/lib/hero with an existing /sbin/init: refused before /sbin/init is touched", async () => {
    const root = rootfs("dangling-hero");
    symlinkSync("/gone/hero", join(root, "usr/lib/hero"));
    const before = snapshot(root);
    const err = await attempt({ ...opts, target: root });
    expect(snapshot(root)).toEqual(before);
    expect(readFileSync(join(root, "sbin/init"), "utf8")).toContain("original init");
    expect(isHeroError(err, "input")).toBe(true);
    expect(String(err)).toContain("/usr/lib/hero in the rootfs is a symlink to /gone/hero");
  });

  test("a write that fails half-way is rolled back: /sbin/init and everything else as it was", async () => {
    const root = rootfs("half-way");
    // /usr/bin cannot take new entries: /etc and /sbin/init (sorted first) are written, then it fails.
    const bin = join(root, "usr/bin");
    locked.push(bin);
    if (isRoot) run(["chattr", "+i", bin]);
    else run(["chmod", "0555", bin]);
    const before = snapshot(root);
    const err = await attempt({ ...opts, target: root });
    expect(snapshot(root)).toEqual(before);
    expect(readFileSync(join(root, "sbin/init"), "utf8")).toContain("original init");
    expect(isHeroError(err, "input")).toBe(true);
    expect(String(err)).toMatch(/\/usr\/bin\/hero-init .*failed: .*rolled back/);
  });

  test("links that resolve are followed as the booted VM does; a re-run changes nothing", async () => {
    const root = rootfs("relative-ok");
    // usr-merge with relative links, and /usr/lib one more link away.
    rmSync(join(root, "sbin"), { recursive: true });
    mkdirSync(join(root, "usr/sbin"));
    writeFileSync(join(root, "usr/sbin/init"), "#!/bin/sh\necho original init\n", { mode: 0o755 });
    symlinkSync("usr/sbin", join(root, "sbin"));
    rmSync(join(root, "usr/lib"), { recursive: true });
    mkdirSync(join(root, "real/lib"), { recursive: true });
    symlinkSync("../../../real/lib", join(root, "usr/lib"));
    await inject({ ...opts, target: root });
    // Inside the root, as the kernel resolves it: the links are kept and lead to hero-init.
    expect(readlinkSync(join(root, "usr/lib"))).toBe("../../../real/lib");
    expect(readlinkSync(join(root, "sbin"))).toBe("usr/sbin");
    expect(inGuest(root, "cat", "/sbin/init")).toBe("PREINIT\n");
    expect(inGuest(root, "cat", "/usr/bin/zinit")).toBe("HERO-INIT\n");
    expect(inGuest(root, "cat", "/sbin/init.before-hero")).toContain("original init");
    const after = snapshot(root);
    const again = await inject({ ...opts, target: root });
    expect(again.changed).toBe(0);
    expect(snapshot(root)).toEqual(after);
  });
});

describe("the same rootfs as an ext4 image", () => {
  test("a dangling /usr/lib is refused the same way, the image byte for byte as it was", async () => {
    const root = rootfs("ext4-src");
    rmSync(join(root, "usr/lib"), { recursive: true });
    symlinkSync("/opt/missing", join(root, "usr/lib"));
    const img = join(dir, "dangling.ext4");
    run(["mke2fs", "-q", "-t", "ext4", "-d", root, img, "32M"]);
    const h = createHash("sha256").update(readFileSync(img)).digest("hex");
    const err = await attempt({ ...opts, format: "ext4", target: img });
    expect(isHeroError(err, "input")).toBe(true);
    expect(String(err)).toContain("/usr/lib in the rootfs is a symlink to /opt/missing");
    expect(String(err)).toContain("dangling");
    expect(createHash("sha256").update(readFileSync(img)).digest("hex")).toBe(h);
  });
});
