/**
 * The manifest's `[vm]` config files written at inject time (issue 20):
 * inline or downloaded and sha256-checked, mode as given, owner resolved in
 * the IMAGE's /etc/passwd and /etc/group (names the host resolves
 * differently, or not at all), the environment's entries over the
 * top-level ones, and the update engine's first pass in the VM finding
 * everything in place (no rewrite, no restart). Bad input names the
 * manifest field and leaves the rootfs as it was.
 */
import { afterEach, beforeEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { isHeroError } from "../lib/errors.ts";
import { type Fixture, machineKeyLine, makeFixture } from "../test/helpers/update-fixture.ts";
import { snapshot } from "../test/snapshot.ts";
import { runUpdate } from "../update/engine.ts";
import { publishSigned } from "../update/publish.ts";
import { type InjectOptions, inject } from "./inject.ts";
import { buildTemplate } from "./templates.ts";

setDefaultTimeout(60_000);
const enc = new TextEncoder();
const sha = (s: string) => createHash("sha256").update(s).digest("hex");
let f: Fixture;
let restarts: string[][];

beforeEach(async () => {
  f = await makeFixture();
  restarts = [];
  // The image's accounts: "daemon" has other ids than on the host, "appsvc" only exists here.
  mkdirSync(join(f.root, "etc"), { recursive: true });
  writeFileSync(
    join(f.root, "etc/passwd"),
    "root:x:0:0::/root:/bin/sh\ndaemon:x:777:778::/:/bin/false\nappsvc:x:4242:4343::/:/bin/false\n",
  );
  writeFileSync(join(f.root, "etc/group"), "root:x:0:\ndaemon:x:778:\nappgrp:x:4343:\n");
  writeFileSync(join(f.dir, "hero-init"), "HERO-INIT\n");
  writeFileSync(join(f.dir, "preinit"), "PREINIT\n");
});
afterEach(() => f.close());

/** Signs `body` as the served bootstrapper.toml and returns its path (the operator's copy). */
function manifest(version: number, body: string): string {
  const expires = new Date(Date.now() + 86400_000).toISOString();
  const text = `version = ${version}\nexpires = ${expires}\n${body}`;
  const at = join(f.pub, "bootstrapper.toml");
  publishSigned(at, enc.encode(text), f.key, "file:bootstrapper.toml");
  return at;
}

/** A file the bootstrap server serves, and its url/sha256/size lines. */
function served(name: string, data: string): string {
  writeFileSync(join(f.pub, name), data);
  return `url = "${f.server.url}${name}"\nsha256 = "${sha(data)}"\nsize = ${data.length}`;
}

/** vm.toml following the fixture's manifest, optionally in an environment. */
const vmToml = (env?: string) =>
  `hostname = "files"\n[update]\nmanifest = "${f.source.manifestUrl}"\nkey = "${machineKeyLine(f.key)}"\n${env ? `env = "${env}"\n` : ""}`;

const opts = (o: Partial<InjectOptions>): InjectOptions => ({
  format: "dir",
  target: f.root,
  heroInit: join(f.dir, "hero-init"),
  preinit: join(f.dir, "preinit"),
  privateLoader: "never",
  cacheDir: join(f.dir, "cache"),
  mtime: 1_700_000_000,
  ...o,
});

const read = (p: string) => readFileSync(join(f.root, p), "utf8");
const owner = (p: string) => {
  const st = statSync(join(f.root, p));
  return [st.mode & 0o7777, st.uid, st.gid];
};

async function refusal(o: InjectOptions): Promise<{ field?: string; text: string }> {
  try {
    await inject(o);
  } catch (e) {
    if (!isHeroError(e, "input")) throw e;
    return { field: e.where.field, text: String(e) };
  }
  throw new Error("inject was not refused");
}

/** The update engine's first pass inside the VM, over the injected root. */
async function firstPass(env?: "dev") {
  const hooks = {
    restart: async (s: string[]) => {
      restarts.push(s);
    },
    health: async () => [],
    log: () => {},
  };
  return runUpdate({ ...f.source, env }, f.paths, hooks);
}

describe("config files at inject time", () => {
  test("inline and downloaded files land with the mode given and the image's owners; the engine's first pass finds them in place; a re-inject changes nothing", async () => {
    const m = manifest(
      1,
      `[[vm.files]]\npath = "/etc/app/app.conf"\ncontent = "port = 80\\n"\nowner = "daemon"\ngroup = "daemon"\nmode = 0o640\nservices = ["app"]\n` +
        `[[vm.files]]\npath = "/etc/app/data.json"\n${served("data.json", '{"a":1}\n')}\nowner = "appsvc"\ngroup = "appgrp"\nmode = 0o600\nservices = ["app"]\n` +
        `[[vm.files]]\npath = "/usr/local/bin/helper"\ncontent = "#!/bin/sh\\n"\ngroup = "appgrp"\nmode = 0o2750\n`,
    );
    const r = await inject(opts({ manifest: m, vmConfig: vmToml() }));
    expect(r.changed).toBeGreaterThan(0);
    expect(read("etc/app/app.conf")).toBe("port = 80\n");
    expect(owner("etc/app/app.conf")).toEqual([0o640, 777, 778]);
    expect(read("etc/app/data.json")).toBe('{"a":1}\n');
    expect(owner("etc/app/data.json")).toEqual([0o600, 4242, 4343]);
    // Set-group-ID survives the chown (owner first, then mode).
    expect(owner("usr/local/bin/helper")).toEqual([0o2750, 0, 4343]);
    expect(owner("etc/app")).toEqual([0o755, 0, 0]);

    // The same inputs again: "already up to date", nothing written.
    const tree = snapshot(f.root);
    const again = await inject(opts({ manifest: m, vmConfig: vmToml() }));
    expect(again.changed).toBe(0);
    expect(again.notes).toContain("already up to date: nothing written");
    expect(snapshot(f.root)).toEqual(tree);

    // The VM's first update pass (its state dir under /var/lib aside): every file in place, no write, no restart.
    const inodes = ["etc/app/app.conf", "etc/app/data.json"].map(
      (p) => statSync(join(f.root, p)).ino,
    );
    const pass = await firstPass();
    expect(pass.error).toBeUndefined();
    expect(pass.files).toEqual({ changed: [], restarted: [] });
    expect(restarts).toEqual([]);
    expect(
      ["etc/app/app.conf", "etc/app/data.json"].map((p) => statSync(join(f.root, p)).ino),
    ).toEqual(inodes);
    expect(snapshot(f.root).filter((l) => !l.startsWith("/var/lib"))).toEqual(
      tree.filter((l) => !l.startsWith("/var/lib")),
    );
  });

  test("the environment's entries replace the top-level ones ([update] env, or the env option)", async () => {
    const m = manifest(
      1,
      `[[vm.files]]\npath = "/etc/a.conf"\ncontent = "top\\n"\n` +
        `[[vm.files]]\npath = "/etc/b.conf"\ncontent = "b\\n"\n` +
        `[[env.dev.vm.files]]\npath = "/etc/a.conf"\ncontent = "dev\\n"\nowner = "appsvc"\n` +
        `[[env.production.vm.files]]\npath = "/etc/c.conf"\ncontent = "prod\\n"\n`,
    );
    await inject(opts({ manifest: m, vmConfig: vmToml("dev") }));
    expect(read("etc/a.conf")).toBe("dev\n");
    expect(owner("etc/a.conf")).toEqual([0o644, 4242, 0]);
    expect(read("etc/b.conf")).toBe("b\n");
    expect(existsSync(join(f.root, "etc/c.conf"))).toBe(false);
    const pass = await firstPass("dev");
    expect(pass.files).toEqual({ changed: [], restarted: [] });

    // No [update] env: the top-level entries only.
    const plain = join(f.dir, "plain");
    mkdirSync(join(plain, "etc"), { recursive: true });
    writeFileSync(join(plain, "etc/passwd"), "root:x:0:0::/root:/bin/sh\n");
    writeFileSync(join(plain, "etc/group"), "root:x:0:\n");
    await inject(opts({ manifest: m, target: plain, vmConfig: `hostname = "plain"\n` }));
    expect(readFileSync(join(plain, "etc/a.conf"), "utf8")).toBe("top\n");
    expect(existsSync(join(plain, "etc/c.conf"))).toBe(false);
    // vm.toml on a config disk (not injected): deploy passes the environment itself.
    await inject(opts({ manifest: m, target: plain, env: "production" }));
    expect(readFileSync(join(plain, "etc/c.conf"), "utf8")).toBe("prod\n");
    expect(readFileSync(join(plain, "etc/a.conf"), "utf8")).toBe("top\n");
  });

  test("an owner or group the image lacks (even one the host has) names the field; nothing is written", async () => {
    const tree = snapshot(f.root);
    const m = manifest(
      1,
      `[[vm.files]]\npath = "/etc/ok.conf"\ncontent = "ok"\n` +
        `[[vm.files]]\npath = "/etc/x.conf"\ncontent = "x"\nowner = "nobody"\n`,
    );
    expect(readFileSync("/etc/passwd", "utf8")).toMatch(/^nobody:/m);
    const r = await refusal(opts({ manifest: m }));
    expect(r.field).toBe("vm.files.1.owner");
    expect(r.text).toContain(
      `config file /etc/x.conf: user "nobody" is not in the image's /etc/passwd`,
    );
    expect(r.text).toContain(m);
    const g = manifest(
      2,
      `[[env.dev.vm.files]]\npath = "/etc/y.conf"\ncontent = "y"\ngroup = "nogroup"\n`,
    );
    const rg = await refusal(opts({ manifest: g, env: "dev" }));
    expect(rg.field).toBe("env.dev.vm.files.0.group");
    expect(rg.text).toContain(`group "nogroup" is not in the image's /etc/group`);
    expect(snapshot(f.root)).toEqual(tree);
  });

  test("a download that does not match its sha256 names the field; nothing is written or cached", async () => {
    const tree = snapshot(f.root);
    const lines = served("bad.conf", "what the server sends\n").replace(
      /sha256 = "[0-9a-f]+"/,
      `sha256 = "${"0".repeat(64)}"`,
    );
    const m = manifest(
      1,
      `[[vm.files]]\npath = "/etc/good.conf"\ncontent = "good"\n[[vm.files]]\npath = "/etc/bad.conf"\n${lines}\n`,
    );
    const r = await refusal(opts({ manifest: m }));
    expect(r.field).toBe("vm.files.1.sha256");
    expect(r.text).toMatch(
      /config file \/etc\/bad\.conf: .* has sha256 [0-9a-f]{64} .* the manifest says 0{64}/,
    );
    expect(snapshot(f.root)).toEqual(tree);
    expect(readdirSync(join(f.dir, "cache/sha256"))).toEqual([]);
  });

  test("a template built as an initramfs keeps the config files' owners (everything else root's)", async () => {
    const m = manifest(
      1,
      `[[vm.files]]\npath = "/etc/app/app.conf"\ncontent = "x\\n"\nowner = "1234"\ngroup = "4343"\nmode = 0o640\n`,
    );
    const out = join(f.dir, "rootfs.cpio");
    const o = opts({ manifest: m });
    await buildTemplate("minimal", "initramfs", out, {
      manifest: m,
      heroInit: o.heroInit,
      preinit: o.preinit,
      privateLoader: "never",
      mtime: o.mtime,
    });
    const t = Bun.spawnSync(["cpio", "-t", "-v", "--numeric-uid-gid", "--quiet"], {
      stdin: Bun.file(out),
      stdout: "pipe",
    });
    expect(t.exitCode).toBe(0);
    const owners = new Map(
      t.stdout
        .toString()
        .trim()
        .split("\n")
        .map((l) => l.split(/\s+/))
        .map((c) => [c.at(-1), `${c[0]} ${c[2]}:${c[3]}`] as const),
    );
    expect(owners.get("etc/app/app.conf")).toBe("-rw-r----- 1234:4343");
    expect(owners.get("etc/passwd")).toMatch(/ 0:0$/);
    expect(owners.get("etc/app")).toBe("drwxr-xr-x 0:0");
  });

  test("an ext4 image: owners from the image's accounts, mode as given, e2fsck clean, a re-inject leaves it byte for byte", async () => {
    const m = manifest(
      1,
      `[[vm.files]]\npath = "/etc/app/app.conf"\ncontent = "port = 80\\n"\nowner = "appsvc"\ngroup = "daemon"\nmode = 0o2640\n`,
    );
    const img = join(f.dir, "root.ext4");
    const mk = Bun.spawnSync(["mke2fs", "-q", "-t", "ext4", "-d", f.root, img, "32M"], {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: "1700000000" },
    });
    expect(mk.exitCode).toBe(0);
    await inject(opts({ manifest: m, format: "ext4", target: img }));
    const stat = Bun.spawnSync(["debugfs", "-R", "stat /etc/app/app.conf", img], {
      stdout: "pipe",
    });
    const text = stat.stdout.toString();
    expect(text).toMatch(/User:\s+4242\s+Group:\s+778/);
    expect(text).toMatch(/Mode:\s+02640/);
    const cat = Bun.spawnSync(["debugfs", "-R", "cat /etc/app/app.conf", img], { stdout: "pipe" });
    expect(cat.stdout.toString()).toBe("port = 80\n");
    expect(Bun.spawnSync(["e2fsck", "-fn", img]).exitCode).toBe(0);
    const h = createHash("sha256").update(readFileSync(img)).digest("hex");
    const again = await inject(opts({ manifest: m, format: "ext4", target: img }));
    expect(again.notes).toContain("already up to date: nothing written");
    expect(createHash("sha256").update(readFileSync(img)).digest("hex")).toBe(h);
  });
});
