import { describe, expect, test } from "bun:test";
import { isHeroError } from "../lib/errors.ts";
import {
  MAX_LINKS,
  MAX_STEPS,
  type NodeLookup,
  type PathNode,
  resolveInRoot,
  resolveParent,
  show,
} from "./root-path.ts";

/** A fake rootfs: path → node; every lookup is recorded. */
function tree(entries: Record<string, string | null>): NodeLookup & { seen: string[] } {
  const m = new Map<string, PathNode>([["/", { type: "dir" }]]);
  for (const [p, v] of Object.entries(entries))
    m.set(
      p,
      v === null
        ? { type: "dir" }
        : v === "file"
          ? { type: "file" }
          : { type: "symlink", target: v },
    );
  const seen: string[] = [];
  const f = ((p: string) => {
    seen.push(p);
    return m.get(p) ?? null;
  }) as NodeLookup & { seen: string[] };
  f.seen = seen;
  return f;
}

function error(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isHeroError(e, "input")).toBe(true);
    return String(e);
  }
  throw new Error("expected an input error");
}

describe("resolveInRoot", () => {
  const usrMerge = tree({
    "/usr": null,
    "/usr/sbin": null,
    "/usr/lib": null,
    "/sbin": "usr/sbin",
    "/lib": "/usr/lib",
    "/usr/sbin/init": "/lib/systemd/systemd",
  });

  test("follows parent links inside the root, relative and absolute", () => {
    expect(resolveInRoot("/sbin/init", usrMerge)).toBe("/usr/sbin/init");
    expect(resolveInRoot("/lib/modules/6.1/x.ko", usrMerge)).toBe("/usr/lib/modules/6.1/x.ko");
  });

  test("the last component is followed only when asked", () => {
    expect(resolveInRoot("/sbin", usrMerge)).toBe("/sbin");
    expect(resolveInRoot("/sbin", usrMerge, { followLast: true })).toBe("/usr/sbin");
  });

  test("`..` cannot climb above / (chroot semantics), in paths and in targets", () => {
    const t = tree({ "/etc": "../../../../host-etc", "/host-etc": null });
    expect(resolveInRoot("/etc/passwd", t)).toBe("/host-etc/passwd");
    expect(resolveInRoot("/../../etc/passwd", t)).toBe("/host-etc/passwd");
    const abs = tree({ "/a": null, "/a/b": "/../../x", "/x": null });
    expect(resolveInRoot("/a/b/c", abs)).toBe("/x/c");
  });

  test("links to / and to . resolve to where they point", () => {
    const t = tree({ "/root-link": "/", "/d": null, "/d/self": ".", "/etc": null });
    expect(resolveInRoot("/root-link/etc/x", t)).toBe("/etc/x");
    expect(resolveInRoot("/d/self/self/f", t)).toBe("/d/f");
  });

  test("a missing component of the path itself is to be created: no lookups past it", () => {
    const t = tree({ "/usr": null });
    expect(resolveInRoot("/usr/lib/hero/hero-init", t)).toBe("/usr/lib/hero/hero-init");
    expect(t.seen).toEqual(["/usr", "/usr/lib"]);
  });

  test("a dangling link is refused, naming the link, its target and the missing part", () => {
    for (const target of ["/opt/missing", "../opt/missing", "../../opt/missing"]) {
      const t = tree({ "/usr": null, "/usr/lib": target, "/opt": null });
      const msg = error(() => resolveInRoot("/usr/lib/hero/preinit", t));
      expect(msg).toContain("/usr/lib/hero/preinit");
      expect(msg).toContain(`/usr/lib in the rootfs is a symlink to ${target}`);
      expect(msg).toContain("/opt/missing does not exist there (a dangling link)");
    }
    // The link as the last component, followed: the same.
    const t = tree({ "/var": null, "/var/log": "/run/log" });
    expect(error(() => resolveInRoot("/var/log", t, { dir: true }))).toContain("dangling");
    // Not followed: the link itself is the answer.
    expect(resolveInRoot("/var/log", t)).toBe("/var/log");
  });

  test("an empty link target is dangling", () => {
    const t = tree({ "/x": "" });
    expect(error(() => resolveInRoot("/x/y", t))).toContain("empty target");
  });

  test("loops end after MAX_LINKS links", () => {
    const t = tree({ "/a": "/b", "/b": "/a" });
    expect(error(() => resolveInRoot("/a/x", t))).toContain(`more than ${MAX_LINKS} symlinks`);
    const self = tree({ "/s": "s" });
    expect(error(() => resolveInRoot("/s/x", self))).toContain("a loop");
    // 40 links are fine.
    const chain: Record<string, string | null> = { "/end": null };
    for (let i = 0; i < MAX_LINKS; i++)
      chain[`/l${i}`] = i === MAX_LINKS - 1 ? "/end" : `/l${i + 1}`;
    expect(resolveInRoot("/l0/f", tree(chain))).toBe("/end/f");
  });

  test("a path whose links take more than MAX_STEPS names to resolve is refused", () => {
    const deep = Array.from({ length: 600 }, () => "d").join("/");
    const entries: Record<string, string | null> = { "/l1": `/${deep}`, "/l2": `/l1/${deep}` };
    for (let i = 1; i <= 1200; i++) entries[`/${Array(i).fill("d").join("/")}`] = null;
    const t = tree(entries);
    expect(resolveInRoot("/l1/x", t)).toBe(`/${deep}/x`);
    expect(error(() => resolveInRoot("/l2/x", t))).toContain(`more than ${MAX_STEPS} steps`);
  });

  test("a file used as a directory is refused", () => {
    const t = tree({ "/etc": "file", "/a": "/etc" });
    expect(error(() => resolveInRoot("/etc/zinit/x", t))).toContain("/etc in the rootfs is a file");
    expect(error(() => resolveInRoot("/a/x", t))).toContain(
      "/a in the rootfs is a symlink to /etc, and /etc in the rootfs is a file",
    );
    expect(error(() => resolveInRoot("/etc", t, { dir: true }))).toContain("not a directory");
    expect(resolveInRoot("/a", t, { followLast: true })).toBe("/etc");
  });

  test("checkName refuses names from link targets before they are looked up", () => {
    const target = "/x\ndump -p /payload /root/.ssh/authorized_keys\nmkdir /y";
    const t = tree({ "/usr": target });
    const checkName = (n: string) => (/^[a-z/]+$/.test(n) ? null : "characters debugfs misreads");
    const msg = error(() => resolveInRoot("/usr/lib/hero", t, { checkName }));
    expect(msg).toContain(`/usr in the rootfs is a symlink to ${JSON.stringify(target)}`);
    expect(msg).toContain("characters debugfs misreads");
    expect(msg).not.toContain("\n");
    expect(t.seen).toEqual(["/usr"]);
  });
});

describe("resolveParent", () => {
  test("the canonical directory, which must be a directory", () => {
    const t = tree({ "/usr": null, "/usr/sbin": null, "/sbin": "usr/sbin", "/f": "file" });
    expect(resolveParent("/sbin/init", t)).toEqual({
      dir: "/usr/sbin",
      name: "init",
      path: "/usr/sbin/init",
    });
    expect(resolveParent("/init", t).path).toBe("/init");
    expect(error(() => resolveParent("/f/x", t))).toContain("not a directory");
    expect(error(() => resolveParent("/a/", t))).toContain("not a clean absolute path");
    expect(error(() => resolveParent("a", t))).toContain("not a clean absolute path");
  });
});

test("show: strings from the rootfs on one line", () => {
  expect(show("/usr/lib")).toBe("/usr/lib");
  expect(show("a\nb")).toBe('"a\\nb"');
  expect(show('a"b')).toBe('"a\\"b"');
  expect(show("a b")).toBe('"a b"');
  expect(show("x".repeat(300))).toBe(`"${"x".repeat(200)}…(300 chars)"`);
  expect(show("\x1b[2J\x9b2J\x7f")).toBe('"\\u001b[2J\\u009b2J\\u007f"');
});
