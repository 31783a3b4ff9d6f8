/**
 * Attacker: the author of an ext4 rootfs image that an operator injects
 * hero-init into (as root, on the host). The injector edits images through
 * debugfs scripts; a symlink target in the image carrying a newline used to
 * become a script line of its own (`dump -p IMAGE-FILE HOST-PATH` writes a
 * file of the image's choosing onto the host). Defence: links are resolved
 * in TypeScript and debugfs only ever sees paths the injector constructed
 * from a strict character set; anything else is refused with the link named,
 * nothing written on the host and the image left byte for byte as it was.
 *
 * Everything the attack aims at lives in a temp directory this test owns.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type InjectOptions, inject } from "../../host/inject.ts";
import { type HeroError, isHeroError } from "../../lib/errors.ts";

setDefaultTimeout(120_000);
const dir = mkdtempSync(join(tmpdir(), "hero-attack-ext4-"));
/** Stands in for the operator's ~/.ssh: the directory the image aims at. */
const victim = join(dir, "victim");
const sha = (p: string) => createHash("sha256").update(readFileSync(p)).digest("hex");

function tool(name: string): void {
  const p = Bun.spawnSync(["sh", "-c", `command -v ${name}`], { stdout: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${name} (e2fsprogs) is needed by this test and missing`);
}

function mkimage(name: string, src: string): string {
  const img = join(dir, name);
  const p = Bun.spawnSync(["mke2fs", "-q", "-t", "ext4", "-d", src, img, "32M"], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, E2FSPROGS_FAKE_TIME: "1700000000" },
  });
  if (p.exitCode !== 0) throw new Error(`mke2fs: ${p.stderr.toString()}`);
  return img;
}

/** A minimal rootfs: /sbin/init and a file the attack dumps out. */
function baseTree(name: string): string {
  const src = join(dir, name);
  mkdirSync(join(src, "sbin"), { recursive: true });
  writeFileSync(join(src, "sbin/init"), "#!/bin/sh\n", { mode: 0o755 });
  writeFileSync(join(src, "payload"), "ssh-ed25519 AAAAC3attacker attacker@image\n", {
    mode: 0o644,
  });
  return src;
}

let opts: Omit<InjectOptions, "target">;

beforeAll(() => {
  for (const t of ["mke2fs", "debugfs", "e2fsck"]) tool(t);
  mkdirSync(victim);
  // hero-init's bytes do not matter here: the private loader is not used.
  writeFileSync(join(dir, "hero-init"), "HERO-INIT");
  writeFileSync(join(dir, "preinit"), "PREINIT");
  opts = {
    format: "ext4",
    heroInit: join(dir, "hero-init"),
    preinit: join(dir, "preinit"),
    privateLoader: "never",
    vmConfig: `hostname = "victim"\n`,
    mtime: 1_700_000_000,
  };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function refusal(o: InjectOptions): Promise<HeroError> {
  let err: unknown = null;
  try {
    await inject(o);
  } catch (e) {
    err = e;
  }
  expect(isHeroError(err, "input")).toBe(true);
  return err as HeroError;
}

describe("a hostile ext4 image", () => {
  test("a symlink target with newlines cannot add debugfs commands (dump -p onto the host)", async () => {
    const src = baseTree("newline-src");
    const pwned = join(victim, "authorized_keys");
    // /usr -> "/x\ndump -p /payload <victim>/authorized_keys\nmkdir /y": the
    // directories along the target exist, so the link resolves to a real
    // directory, and every path the injector builds under /usr carries it.
    const target = `/x\ndump -p /payload ${pwned}\nmkdir /y`;
    mkdirSync(join(src, target), { recursive: true });
    symlinkSync(target, join(src, "usr"));
    const img = mkimage("newline.ext4", src);
    const before = sha(img);

    const err = await refusal({ ...opts, target: img });

    expect(existsSync(pwned)).toBe(false);
    expect(readdirSync(victim)).toEqual([]);
    expect(String(err)).toContain("/usr");
    expect(String(err)).toMatch(/characters/);
    // The target is shown escaped: the message is one line.
    expect(String(err)).not.toContain("\n");
    expect(sha(img)).toBe(before);
    expect(readdirSync(dir).filter((f) => f.includes("hero-tmp"))).toEqual([]);
  });

  test('quotes and backslashes in a link target are refused, not "escaped"', async () => {
    for (const [i, target] of [`/a"b`, "/a\\b", '/a" "/b', "/a b"].entries()) {
      const src = baseTree(`quote-src-${i}`);
      mkdirSync(join(src, target), { recursive: true });
      symlinkSync(target, join(src, "usr"));
      const img = mkimage(`quote-${i}.ext4`, src);
      const before = sha(img);
      const err = await refusal({ ...opts, target: img });
      expect(String(err)).toMatch(/\/usr .*characters/);
      expect(sha(img)).toBe(before);
    }
  });

  test("a long (slow) symlink target with newlines in /sbin is refused as well", async () => {
    const src = baseTree("slow-src");
    const pwned = join(victim, "cron");
    const target = `/${"d".repeat(80)}\ndump -p /payload ${pwned}\nmkdir /z`;
    mkdirSync(join(src, target), { recursive: true });
    rmSync(join(src, "sbin"), { recursive: true });
    symlinkSync(target, join(src, "sbin"));
    const img = mkimage("slow.ext4", src);
    const before = sha(img);
    const err = await refusal({ ...opts, target: img });
    expect(existsSync(pwned)).toBe(false);
    expect(String(err)).toContain("/sbin");
    expect(sha(img)).toBe(before);
  });

  test("a manifest path with a newline never reaches debugfs", async () => {
    const src = baseTree("manifest-src");
    const img = mkimage("manifest.ext4", src);
    const before = sha(img);
    const pwned = join(victim, "from-manifest");
    writeFileSync(join(dir, "tool"), "TOOL");
    const toolSha = sha(join(dir, "tool"));
    writeFileSync(
      join(dir, "bootstrapper.toml"),
      `version = 1\n[[vm.binaries]]\nname = "tool"\nversion = "1.0.0"\nurl = "file://${dir}/tool"\n` +
        `sha256 = "${toolSha}"\nsize = 4\npath = "/usr/bin/tool\\ndump -p /payload ${pwned}\\nrm /x"\n`,
    );
    const err = await refusal({
      ...opts,
      target: img,
      manifest: join(dir, "bootstrapper.toml"),
      cacheDir: join(dir, "cache"),
    });
    expect(existsSync(pwned)).toBe(false);
    expect(String(err)).toMatch(/control character|characters/);
    expect(sha(img)).toBe(before);
  });

  test("a link loop on the way is refused after 40 links, the image unchanged", async () => {
    const src = baseTree("loop-src");
    symlinkSync("usr", join(src, "usr"));
    const img = mkimage("loop.ext4", src);
    const before = sha(img);
    const err = await refusal({ ...opts, target: img });
    expect(String(err)).toContain("more than 40 symlinks");
    expect(sha(img)).toBe(before);
  });

  test("usr-merge links still work: the same image shape with a clean /usr -> /real-usr", async () => {
    const src = baseTree("clean-src");
    mkdirSync(join(src, "real-usr/bin"), { recursive: true });
    symlinkSync("/real-usr", join(src, "usr"));
    const img = mkimage("clean.ext4", src);
    await inject({ ...opts, target: img });
    const ls = Bun.spawnSync(["debugfs", "-R", "stat /real-usr/lib/hero/hero-init", img], {
      stdout: "pipe",
      stderr: "pipe",
    }).stdout.toString();
    expect(ls).toMatch(/Type: regular/);
    expect(Bun.spawnSync(["e2fsck", "-fn", img], { stdout: "pipe" }).exitCode).toBe(0);
    const h = sha(img);
    expect((await inject({ ...opts, target: img })).changed).toBe(0);
    expect(sha(img)).toBe(h);
  });
});
