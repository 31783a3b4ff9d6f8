/**
 * rootfs templates (rootfs-templates/<name>/): build the cached base rootfs,
 * inject hero-init into a copy, and write it out in a format.
 */
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import * as v from "valibot";
import { HeroError } from "../lib/errors.ts";
import { parseToml } from "../lib/toml.ts";
import { runChecked } from "../sys/command.ts";
import { defaultCacheDir } from "./cache.ts";
import { entriesFromDir } from "./cpio/from-dir.ts";
import { writeNewc } from "./cpio/newc.ts";
import { type InjectOptions, type InjectReport, inject } from "./inject.ts";

/** Where the templates live (the repository's rootfs-templates/). */
export const TEMPLATES_DIR =
  [
    process.env.HERO_TEMPLATES_DIR,
    join(dirname(process.execPath), "../rootfs-templates"),
    join(import.meta.dir, "../rootfs-templates"),
    "/usr/share/hero-init/rootfs-templates",
  ].find((d): d is string => !!d && existsSync(join(d, "minimal"))) ??
  join(import.meta.dir, "../rootfs-templates");

const TemplateSchema = v.strictObject({
  name: v.pipe(v.string(), v.regex(/^[a-z0-9-]+$/)),
  description: v.optional(v.string(), ""),
  builder: v.picklist(["busybox", "debootstrap"]),
  variant: v.optional(v.string(), "minbase"),
  include: v.optional(v.array(v.pipe(v.string(), v.regex(/^[a-z0-9.+-]+$/))), []),
});

/** A template as read from disk. */
export interface Template {
  name: string;
  dir: string;
  spec: v.InferOutput<typeof TemplateSchema>;
  services: Record<string, string>;
  vmToml: string;
}

/** The names of the templates. */
export function listTemplates(dir = TEMPLATES_DIR): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, "template.toml")))
    .map((d) => d.name)
    .sort();
}

/** Reads and validates a template. */
export function loadTemplate(name: string, dir = TEMPLATES_DIR): Template {
  if (!/^[a-z0-9-]+$/.test(name)) throw new HeroError("template", `bad template name "${name}"`);
  const tdir = join(dir, name);
  const file = join(tdir, "template.toml");
  if (!existsSync(file))
    throw new HeroError(
      "template",
      `no template "${name}" (have: ${listTemplates(dir).join(", ")})`,
      { file },
    );
  const res = v.safeParse(TemplateSchema, parseToml(readFileSync(file, "utf8"), file));
  if (!res.success)
    throw new HeroError("schema", res.issues[0].message, {
      file,
      field: (res.issues[0].path ?? []).map((p) => p.key).join("."),
    });
  const services: Record<string, string> = {};
  const sdir = join(tdir, "services");
  if (existsSync(sdir))
    for (const f of readdirSync(sdir)
      .filter((f) => f.endsWith(".yaml"))
      .sort())
      services[f.slice(0, -5)] = readFileSync(join(sdir, f), "utf8");
  const vmToml = existsSync(join(tdir, "vm.toml"))
    ? readFileSync(join(tdir, "vm.toml"), "utf8")
    : "";
  return { name, dir: tdir, spec: res.output, services, vmToml };
}

/** The host's Debian suite and mirror, from its apt sources (so no host is hard-coded). */
export function hostDebianSource(): { suite: string; mirror: string } {
  const texts: string[] = [];
  for (const f of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"])
    if (existsSync(f)) texts.push(readFileSync(f, "utf8"));
  const t = texts.join("\n");
  const deb822 = /^URIs:\s*(\S+)\s*\nSuites:\s*(\S+)/m.exec(t);
  if (deb822) return { mirror: deb822[1] as string, suite: deb822[2] as string };
  const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+main/m.exec(t);
  if (line) return { mirror: line[1] as string, suite: line[2] as string };
  throw new HeroError("template", "cannot find the host's Debian mirror in /etc/apt/sources*");
}

function buildBusybox(out: string): void {
  for (const d of [
    "bin",
    "sbin",
    "etc",
    "dev",
    "proc",
    "sys",
    "run",
    "tmp",
    "root",
    "var/log",
    "usr/bin",
    "usr/sbin",
  ])
    mkdirSync(join(out, d), { recursive: true });
  cpSync("/bin/busybox", join(out, "bin/busybox"));
  const list = Bun.spawnSync(["/bin/busybox", "--list-full"])
    .stdout.toString()
    .split("\n")
    .filter(Boolean);
  for (const applet of list) {
    const p = join(out, applet);
    if (existsSync(p) || applet === "bin/busybox" || applet.endsWith("/init")) continue;
    mkdirSync(join(p, ".."), { recursive: true });
    const depth = applet.split("/").length - 1;
    symlinkSync(`${"../".repeat(depth)}bin/busybox`, p);
  }
  writeFileSync(join(out, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(out, "etc/group"), "root:x:0:\n");
}

function buildDebootstrap(t: Template, out: string): void {
  const { suite, mirror } = hostDebianSource();
  const include = t.spec.include.length ? [`--include=${t.spec.include.join(",")}`] : [];
  runChecked(["debootstrap", `--variant=${t.spec.variant}`, ...include, suite, out, mirror], {
    what: "debootstrap",
  });
  rmSync(join(out, "var/cache/apt/archives"), { recursive: true, force: true });
  mkdirSync(join(out, "var/cache/apt/archives/partial"), { recursive: true });
}

/** Returns the cached base rootfs of a template, building it on first use. */
export function templateBase(
  t: Template,
  o: { cacheDir?: string; rebuild?: boolean } = {},
): string {
  const cache = join(o.cacheDir ?? defaultCacheDir(), "templates");
  mkdirSync(cache, { recursive: true });
  const spec = JSON.stringify(t.spec);
  const key = new Bun.CryptoHasher("sha256").update(spec).digest("hex").slice(0, 12);
  const dir = join(cache, `${t.name}-${key}`);
  if (existsSync(dir) && !o.rebuild) return dir;
  const tmp = mkdtempSync(join(cache, `.${t.name}-`));
  chmodSync(tmp, 0o755); // it becomes the rootfs's "/": mkdtemp makes it 0700
  try {
    if (t.spec.builder === "busybox") buildBusybox(tmp);
    else buildDebootstrap(t, tmp);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
}

/** Output formats of `template build`. */
export type TemplateFormat = "dir" | "ext4" | "initramfs";

/** Pure: ext4 size for a tree of `bytes` (30% slack + 64 MiB, rounded up to MiB). */
export function ext4Size(bytes: number): number {
  return Math.ceil((bytes * 1.3 + 64 * 1024 * 1024) / (1024 * 1024));
}

function treeBytes(dir: string): number {
  const p = Bun.spawnSync(["du", "-sb", dir]);
  return Number(p.stdout.toString().split("\t")[0]) || 0;
}

/**
 * Builds a template into `out`: copies the base, injects hero-init and the
 * given inputs (merged with the template's services), writes the format.
 */
export async function buildTemplate(
  name: string,
  format: TemplateFormat,
  out: string,
  o: Omit<InjectOptions, "format" | "target"> & { cacheDir?: string; rebuild?: boolean } = {},
): Promise<InjectReport> {
  const t = loadTemplate(name);
  const base = templateBase(t, o);
  const work = mkdtempSync(join(o.cacheDir ?? defaultCacheDir(), "stage-"));
  const stage = join(work, "root");
  try {
    runChecked(["cp", "-a", base, stage], { what: "copying the template base" });
    const services = { ...t.services, ...(typeof o.services === "object" ? o.services : {}) };
    const report = await inject({
      ...o,
      format: "dir",
      target: stage,
      services,
      bootsAsInitramfs: format === "initramfs",
    });
    const mtime = o.mtime ?? Number(process.env.SOURCE_DATE_EPOCH ?? 0);
    const tmpOut = `${out}.hero-tmp`;
    rmSync(tmpOut, { recursive: true, force: true });
    if (format === "dir") {
      renameSync(stage, tmpOut);
    } else if (format === "initramfs") {
      // The kernel opens /dev/console before init runs: it must be in the archive.
      const entries = entriesFromDir(stage, { mtime });
      // Everything is root's, except what the plan gave another owner (the manifest's config files).
      const owned = new Map(
        report.plan.filter((e) => e.uid || e.gid).map((e) => [e.path.slice(1), e] as const),
      );
      for (const e of entries) {
        const p = owned.get(e.path);
        if (p) Object.assign(e, { uid: p.uid, gid: p.gid });
      }
      if (!entries.some((e) => e.path === "dev/console"))
        entries.push({ type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1, mtime });
      writeFileSync(tmpOut, writeNewc(entries));
    } else {
      const uuid = "5e1f0c6a-0000-4000-8000-000000000000";
      runChecked(
        [
          "mke2fs",
          "-q",
          "-t",
          "ext4",
          "-d",
          stage,
          "-U",
          uuid,
          "-E",
          `hash_seed=${uuid},root_owner=0:0`,
          "-L",
          "rootfs",
          tmpOut,
          `${ext4Size(treeBytes(stage))}M`,
        ],
        { what: "mke2fs", env: { E2FSPROGS_FAKE_TIME: String(mtime) } },
      );
    }
    rmSync(out, { recursive: true, force: true });
    renameSync(tmpOut, out);
    return { ...report, target: out };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
