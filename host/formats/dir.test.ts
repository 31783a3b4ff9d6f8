import { afterAll, describe, expect, test } from "bun:test";
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isHeroError } from "../../lib/errors.ts";
import { snapshot } from "../../test/snapshot.ts";
import { buildPlan } from "../plan.ts";
import { applyWrites, dirFormat, entryAt, type HostFs, hostFs } from "./dir.ts";
import { planWrites } from "./write-ops.ts";

const tmp = mkdtempSync(join(tmpdir(), "hero-dir-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const enc = new TextEncoder();

/** A rootfs with something of each kind the plan meets: usr-merge links, an /sbin/init, an old hero-init, a dir with the wrong mode. */
function fixture(name: string): string {
  const root = join(tmp, name);
  mkdirSync(join(root, "usr/sbin"), { recursive: true });
  mkdirSync(join(root, "usr/lib/hero"), { recursive: true, mode: 0o755 });
  mkdirSync(join(root, "etc/hero-init"), { recursive: true, mode: 0o755 });
  symlinkSync("usr/sbin", join(root, "sbin"));
  writeFileSync(join(root, "usr/sbin/init"), "#!/bin/sh\n", { mode: 0o755 });
  writeFileSync(join(root, "usr/lib/hero/hero-init"), "OLD HERO", { mode: 0o755 });
  mkdirSync(join(root, "usr/bin"));
  symlinkSync("/somewhere/else", join(root, "usr/bin/zinit"));
  return root;
}

const plan = buildPlan({
  heroInit: enc.encode("NEW HERO"),
  preinit: enc.encode("PRE"),
  vmConfig: `hostname = "t"\n`,
  services: { web: "exec: web\n" },
});
const owners = process.getuid?.() === 0;

/** hostFs, counting calls and failing the `fail`-th one. */
function failing(fail: number): HostFs & { calls: number } {
  const f = { calls: 0 } as HostFs & { calls: number };
  for (const [k, fn] of Object.entries(hostFs) as [keyof HostFs, (...a: unknown[]) => void][]) {
    (f as unknown as Record<string, unknown>)[k] = (...a: unknown[]) => {
      if (f.calls++ === fail) throw new Error(`injected failure in ${k}`);
      return fn(...a);
    };
  }
  return f;
}

describe("applyWrites", () => {
  test("a failure at any step leaves the rootfs exactly as it was", () => {
    const probe = fixture("probe");
    const count = failing(-1);
    const ops = planWrites(plan, (p) => entryAt(probe, p), { owners });
    expect(ops.map((o) => o.op)).toEqual(
      expect.arrayContaining(["mkdir", "chmod", "aside", "file", "symlink"]),
    );
    applyWrites(probe, ops, { mtime: 1, owners }, count);
    expect(count.calls).toBeGreaterThan(30);
    // The last calls remove the backups of replaced entries, after everything is written.
    const backups = ops.filter((o) => (o.op === "file" || o.op === "symlink") && o.replaces);
    expect(backups.length).toBeGreaterThan(0);
    for (let k = 0; k < count.calls - backups.length; k++) {
      const root = fixture(`fail-${k}`);
      const before = snapshot(root);
      const steps = planWrites(plan, (p) => entryAt(root, p), { owners });
      let err: unknown = null;
      try {
        applyWrites(root, steps, { mtime: 1, owners }, failing(k));
      } catch (e) {
        err = e;
      }
      expect(isHeroError(err, "input")).toBe(true);
      expect(String(err)).toContain("injected failure");
      expect(String(err)).toContain("every change was rolled back");
      expect(snapshot(root)).toEqual(before);
      rmSync(root, { recursive: true });
    }
    // Failing to remove a backup after everything is written is only a note.
    const late = fixture("late");
    const r = applyWrites(
      late,
      planWrites(plan, (p) => entryAt(late, p), { owners }),
      { mtime: 1, owners },
      failing(count.calls - 1),
    );
    expect(r.notes.join()).toContain("could not remove a backup");
  });

  test("applied, the same plan has nothing left to do; the old /sbin/init is kept", async () => {
    const root = fixture("ok");
    const r = await dirFormat(root).apply(plan, { mtime: 1 });
    expect(r.notes).toEqual(["/sbin/init kept as /sbin/init.before-hero"]);
    expect(readFileSync(join(root, "usr/sbin/init.before-hero"), "utf8")).toBe("#!/bin/sh\n");
    expect(readlinkSync(join(root, "usr/sbin/init"))).toBe("/usr/lib/hero/preinit");
    expect(readlinkSync(join(root, "sbin"))).toBe("usr/sbin");
    expect(lstatSync(join(root, "etc/hero-init")).mode & 0o777).toBe(0o700);
    expect(readdirSync(join(root, "usr/lib/hero")).filter((n) => n.startsWith(".hero"))).toEqual(
      [],
    );
    const after = snapshot(root);
    expect(planWrites(plan, (p) => entryAt(root, p), { owners })).toEqual([]);
    expect((await dirFormat(root).apply(plan, { mtime: 1 })).changed).toBe(0);
    expect(snapshot(root)).toEqual(after);
  });

  test("lookup follows parent links inside the root and sees nothing past a dangling one", async () => {
    const root = fixture("lookup");
    symlinkSync("/opt/missing", join(root, "usr/lib/gone"));
    const fmt = dirFormat(root);
    expect(await fmt.lookup("/sbin/init")).toMatchObject({ type: "file", mode: 0o755 });
    expect(await fmt.lookup("/sbin")).toEqual({ type: "symlink", target: "usr/sbin" });
    expect(await fmt.lookup("/usr/lib/gone/x")).toBeNull();
    const f = await fmt.lookup("/usr/lib/hero/hero-init");
    expect(f?.type === "file" && new TextDecoder().decode(await f.data())).toBe("OLD HERO");
  });
});
