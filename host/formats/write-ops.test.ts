import { describe, expect, test } from "bun:test";
import { isHeroError } from "../../lib/errors.ts";
import { buildPlan, type PlanEntry, sha256 } from "../plan.ts";
import { type Entry, type EntryLookup, planWrites, type WriteOp } from "./write-ops.ts";

const enc = new TextEncoder();
const dir = (mode = 0o755, uid = 0): Entry => ({ type: "dir", mode, uid, gid: uid });
const file = (text: string, mode = 0o755): Entry => ({
  type: "file",
  mode,
  uid: 0,
  gid: 0,
  sha256: () => sha256(enc.encode(text)),
});
const link = (target: string): Entry => ({ type: "symlink", target });

function rootfs(entries: Record<string, Entry>): EntryLookup {
  const m = new Map<string, Entry>([["/", dir()], ...Object.entries(entries)]);
  return (p) => m.get(p) ?? null;
}

/** The plan of a plain injection (hero-init, preinit, one service). */
const plan = buildPlan({
  heroInit: enc.encode("HERO"),
  preinit: enc.encode("PRE"),
  services: { web: "exec: web\n" },
});

/** A lookup that sees what `ops` did on top of `base`: applying the plan twice must plan nothing. */
function after(base: EntryLookup, ops: readonly WriteOp[]): EntryLookup {
  const m = new Map<string, Entry | null>();
  for (const o of ops) {
    if (o.op === "mkdir" || o.op === "chmod") m.set(o.path, dir(o.mode, o.uid));
    else if (o.op === "aside") {
      m.set(o.to, base(o.path));
      m.set(o.path, null);
    } else if (o.op === "symlink") m.set(o.path, link(o.target));
    else m.set(o.path, { type: "file", mode: o.mode, uid: 0, gid: 0, sha256: () => o.sha256 });
  }
  return (p) => (m.has(p) ? (m.get(p) ?? null) : base(p));
}

function refused(f: () => unknown, re: RegExp): void {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(isHeroError(err, "input")).toBe(true);
  expect(String(err)).toMatch(re);
}

describe("planWrites", () => {
  test("an empty rootfs: every directory made, parents first, then files and links", () => {
    const ops = planWrites(plan, rootfs({}), { owners: true });
    expect(ops.filter((o) => o.op === "mkdir").map((o) => o.path)).toContain("/usr/lib/hero");
    const i = (p: string) => ops.findIndex((o) => o.path === p);
    expect(i("/usr")).toBeLessThan(i("/usr/lib"));
    expect(i("/usr/lib/hero")).toBeLessThan(i("/usr/lib/hero/hero-init"));
    expect(ops.find((o) => o.path === "/sbin/init")).toMatchObject({
      op: "symlink",
      target: "/usr/lib/hero/preinit",
      replaces: null,
    });
    expect(ops.some((o) => o.op === "aside")).toBe(false);
  });

  test("usr-merge: links to directories are followed, not replaced; an existing /sbin/init is set aside", () => {
    const fs = rootfs({
      "/usr": dir(),
      "/usr/sbin": dir(),
      "/usr/lib": dir(),
      "/sbin": link("usr/sbin"),
      "/lib": link("/usr/lib"),
      "/usr/sbin/init": link("/lib/systemd/systemd"),
    });
    const ops = planWrites(plan, fs, { owners: true });
    expect(ops.some((o) => o.path === "/sbin")).toBe(false);
    expect(ops.filter((o) => o.path.startsWith("/usr/sbin/init"))).toEqual([
      {
        op: "aside",
        path: "/usr/sbin/init",
        to: "/usr/sbin/init.before-hero",
        entry: "/sbin/init",
      },
      {
        op: "symlink",
        path: "/usr/sbin/init",
        entry: "/sbin/init",
        target: "/usr/lib/hero/preinit",
        uid: 0,
        gid: 0,
        replaces: null,
      },
    ]);
    // Applied, the same plan has nothing left to do.
    expect(planWrites(plan, after(fs, ops), { owners: true })).toEqual([]);
  });

  test("an /sbin/init.before-hero already there, or hero-init's own /sbin/init, is not set aside again", () => {
    const ops = planWrites(
      plan,
      rootfs({ "/sbin": dir(), "/sbin/init": file("x"), "/sbin/init.before-hero": file("y") }),
      { owners: true },
    );
    expect(ops.find((o) => o.path === "/sbin/init")).toMatchObject({ replaces: "file" });
    const ours = planWrites(
      plan,
      rootfs({ "/sbin": dir(), "/sbin/init": link("/usr/lib/hero/old-preinit") }),
      { owners: true },
    );
    expect(ours.some((o) => o.op === "aside")).toBe(false);
  });

  test("unchanged files and links: no operation; changed ones replace", () => {
    const fs = rootfs({
      "/usr": dir(),
      "/usr/lib": dir(),
      "/usr/lib/hero": dir(),
      "/usr/lib/hero/hero-init": file("HERO"),
      "/usr/lib/hero/preinit": file("OLD"),
    });
    const ops = planWrites(plan, fs, { owners: true });
    expect(ops.some((o) => o.path === "/usr/lib/hero/hero-init")).toBe(false);
    expect(ops.find((o) => o.path === "/usr/lib/hero/preinit")).toMatchObject({
      op: "file",
      replaces: "file",
    });
  });

  test("own directories get their mode (and owner, when enforced); others are left as they are", () => {
    const fs = rootfs({
      "/etc": dir(0o700, 1000),
      "/etc/hero-init": dir(0o755, 1000),
    });
    const p: PlanEntry[] = buildPlan({
      heroInit: enc.encode("H"),
      preinit: enc.encode("P"),
      vmConfig: "x",
    }).filter((e) => e.path.startsWith("/etc"));
    expect(planWrites(p, fs, { owners: true }).filter((o) => o.op === "chmod")).toEqual([
      {
        op: "chmod",
        path: "/etc/hero-init",
        entry: "/etc/hero-init",
        mode: 0o700,
        uid: 0,
        gid: 0,
        was: { mode: 0o755, uid: 1000, gid: 1000 },
      },
    ]);
    const noOwners = planWrites(p, fs, { owners: false }).filter((o) => o.op === "chmod");
    expect(noOwners).toMatchObject([{ mode: 0o700, uid: 1000, gid: 1000 }]);
  });

  test("a dangling link on the way is refused, absolute or relative", () => {
    for (const target of ["/opt/missing", "../../opt/missing"]) {
      const fs = rootfs({ "/usr": dir(), "/usr/lib": link(target), "/sbin": dir() });
      refused(
        () => planWrites(plan, fs, { owners: true }),
        /\/usr\/lib in the rootfs is a symlink to .*opt\/missing.*dangling/,
      );
    }
    const hero = rootfs({
      "/usr": dir(),
      "/usr/lib": dir(),
      "/usr/lib/hero": link("/gone"),
      "/sbin": dir(),
      "/sbin/init": file("x"),
    });
    refused(() => planWrites(plan, hero, { owners: true }), /\/usr\/lib\/hero.*dangling/);
  });

  test("what is in the way is refused: a file for a directory, a directory for a file", () => {
    refused(
      () => planWrites(plan, rootfs({ "/usr": file("x") }), { owners: true }),
      /\/usr: \/usr exists in the rootfs and is not a directory/,
    );
    refused(
      () =>
        planWrites(plan, rootfs({ "/usr": dir(), "/usr/bin": dir(), "/usr/bin/zinit": dir() }), {
          owners: true,
        }),
      /\/usr\/bin\/zinit: .*is a directory in the rootfs, where a symlink goes/,
    );
    refused(
      () =>
        planWrites(
          plan,
          rootfs({ "/usr": link("/etc/passwd"), "/etc": dir(), "/etc/passwd": file("x") }),
          { owners: true },
        ),
      /\/etc\/passwd in the rootfs is a file, not a directory/,
    );
  });

  test("nothing is looked up inside a directory the plan creates", () => {
    const seen: string[] = [];
    const base = rootfs({ "/usr": dir() });
    planWrites(
      plan,
      (p) => {
        seen.push(p);
        return base(p);
      },
      { owners: true },
    );
    expect(seen).toContain("/usr/lib");
    expect(seen.filter((p) => p.startsWith("/usr/lib/"))).toEqual([]);
  });

  test("checkName is applied to names from links", () => {
    const fs = rootfs({ "/usr": link("/a b"), "/a b": dir() });
    const checkName = (n: string) => (n.includes(" ") ? "a blank" : null);
    refused(() => planWrites(plan, fs, { owners: true, checkName }), /"\/a b" has a blank/);
    expect(planWrites(plan, fs, { owners: true }).length).toBeGreaterThan(0);
  });
});
