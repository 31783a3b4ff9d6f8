/**
 * The injection plan (pure): every directory, file and symlink to write into
 * a rootfs, computed and validated before the first write. All four rootfs
 * formats apply the same plan, so what is injected is defined once, here.
 */

import { createHash } from "node:crypto";
import { configPathProblem } from "../lib/config-files.ts";
import { HeroError } from "../lib/errors.ts";
import { LAYOUT } from "../lib/layout.ts";
import type { Binary } from "../lib/manifest.ts";

/** One thing to write. Paths are absolute inside the rootfs. */
export type PlanEntry =
  /** `own`: hero-init's own directory, whose mode is enforced; others are only created if missing. */
  | { kind: "dir"; path: string; mode: number; uid: number; gid: number; own: boolean }
  | {
      kind: "file";
      path: string;
      mode: number;
      uid: number;
      gid: number;
      data: Uint8Array;
      sha256: string;
    }
  | { kind: "symlink"; path: string; target: string; uid: number; gid: number };

/**
 * One of the manifest's config files (lib/config-files.ts), ready to write:
 * its verified bytes, and its owner already resolved in the image's own
 * /etc/passwd and /etc/group.
 */
export interface PlannedConfigFile {
  path: string;
  data: Uint8Array;
  mode: number;
  uid: number;
  gid: number;
  /** Where the entry is in the manifest, for errors ("vm.files.0", "env.dev.vm.files.1"). */
  field: string;
}

/** Everything an injection writes, already read and verified. */
export interface PlanInputs {
  heroInit: Uint8Array;
  preinit: Uint8Array;
  /** ld.so (as "ld.so") and the libraries, when the rootfs has no usable glibc. */
  privateLibs?: Record<string, Uint8Array> | null;
  /** `[vm]` binaries with their verified bytes. */
  binaries?: { binary: Binary; data: Uint8Array }[];
  /** name → YAML text of zinit service files. */
  services?: Record<string, string>;
  /** vm.toml text (may hold secrets: written 0600 root). */
  vmConfig?: string | null;
  /** Extra secret files: absolute path → content, written 0600 root. */
  secrets?: Record<string, Uint8Array>;
  /** The manifest's `[vm]` config files for the VM's environment. */
  configFiles?: PlannedConfigFile[];
  /** Kernel modules to add: version and relative path → bytes (incl. modules.dep). */
  modules?: { version: string; files: Record<string, Uint8Array> } | null;
  /** Also write /init (initramfs targets). */
  initramfs?: boolean;
}

/** sha256 hex of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

const enc = new TextEncoder();

/** Refuses paths that are relative, contain "..", "//", a control character or a trailing "/". */
export function checkGuestPath(p: string, field = "path"): string {
  if (
    !p.startsWith("/") ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing them is the point
    /[\x00-\x1f\x7f]/.test(p) ||
    p
      .split("/")
      .slice(1)
      .some((s) => s === "" || s === "." || s === "..")
  ) {
    throw new HeroError(
      "path",
      `${JSON.stringify(p)} is not a clean absolute path inside the rootfs (no "." or ".." parts, no "//", no control characters)`,
      { field },
    );
  }
  return p;
}

/** Parent directories of `p` (excluding "/"), outermost first. */
export function parents(p: string): string[] {
  const parts = p.split("/").slice(1, -1);
  return parts.map((_, i) => `/${parts.slice(0, i + 1).join("/")}`);
}

/** Builds and validates the plan: sorted, parents first, no duplicates. */
export function buildPlan(i: PlanInputs): PlanEntry[] {
  const files: PlanEntry[] = [];
  const file = (path: string, data: Uint8Array, mode: number) =>
    files.push({
      kind: "file",
      path: checkGuestPath(path),
      mode,
      uid: 0,
      gid: 0,
      data,
      sha256: sha256(data),
    });
  const link = (path: string, target: string) =>
    files.push({ kind: "symlink", path: checkGuestPath(path), target, uid: 0, gid: 0 });

  file(LAYOUT.heroInit, i.heroInit, 0o755);
  file(LAYOUT.preinit, i.preinit, 0o755);
  link(LAYOUT.execHelper, "preinit");
  link(LAYOUT.sbinInit, LAYOUT.preinit);
  if (i.initramfs) link(LAYOUT.initramfsInit, LAYOUT.preinit);
  link(LAYOUT.binHeroInit, LAYOUT.heroInit);
  link(LAYOUT.binZinit, "hero-init");
  for (const [name, data] of Object.entries(i.privateLibs ?? {})) {
    if (!/^[A-Za-z0-9._+-]+$/.test(name)) throw new HeroError("path", `bad library name "${name}"`);
    file(`${LAYOUT.dir}/${name}`, data, 0o755);
  }
  for (const { binary: b, data } of i.binaries ?? []) {
    // pkgs/<name>/<version>/<name>, pkgs/<name>/current -> <version>, and the
    // install path -> pkgs/<name>/current/<name>: an update switches one link.
    file(`${LAYOUT.pkgs}/${b.name}/${b.version}/${b.name}`, data, b.mode);
    link(`${LAYOUT.pkgs}/${b.name}/current`, b.version);
    link(b.path ?? `/usr/bin/${b.name}`, `${LAYOUT.pkgs}/${b.name}/current/${b.name}`);
  }
  for (const [name, yaml] of Object.entries(i.services ?? {})) {
    if (!/^[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,127}$/.test(name))
      throw new HeroError("path", `bad service name "${name}"`, { field: "services" });
    file(`${LAYOUT.services}/${name}.yaml`, enc.encode(yaml), 0o644);
  }
  if (i.vmConfig !== undefined && i.vmConfig !== null)
    file(LAYOUT.vmConfig, enc.encode(i.vmConfig), 0o600);
  for (const [path, data] of Object.entries(i.secrets ?? {})) file(path, data, 0o600);
  for (const c of i.configFiles ?? []) {
    // Checked again here (the manifest schema did it first): the plan trusts no caller.
    const field = `${c.field}.path`;
    checkGuestPath(c.path, field);
    const why = configPathProblem(c.path);
    if (why) throw new HeroError("path", `config file ${JSON.stringify(c.path)} ${why}`, { field });
    const { path, data, mode, uid, gid } = c;
    files.push({ kind: "file", path, mode, uid, gid, data, sha256: sha256(data) });
  }
  if (i.modules) {
    for (const [rel, data] of Object.entries(i.modules.files)) {
      file(`${LAYOUT.modules}/${i.modules.version}/${rel}`, data, 0o644);
    }
  }

  const seen = new Set<string>();
  for (const f of files) {
    if (seen.has(f.path))
      throw new HeroError("duplicate", `two entries write ${f.path}`, { field: f.path });
    seen.add(f.path);
  }
  const dirs = new Map<string, PlanEntry>();
  const mountpoints = [
    "/dev",
    "/proc",
    "/sys",
    "/run",
    "/tmp",
    LAYOUT.services,
    LAYOUT.configDir,
    "/var/log",
  ];
  const secretParents = new Set(
    Object.keys(i.secrets ?? {}).map((p) => p.slice(0, p.lastIndexOf("/"))),
  );
  for (const d of [
    ...mountpoints.flatMap((m) => [...parents(m), m]),
    ...files.flatMap((f) => parents(f.path)),
  ]) {
    if (seen.has(d))
      throw new HeroError("path", `${d} is both a directory and a file`, { field: d });
    // The directory holding a secret is 0700 (/etc/hero-init, /root/.ssh, the mycelium key's).
    const secretDir = d === LAYOUT.configDir || secretParents.has(d);
    const mode = d === "/tmp" ? 0o1777 : secretDir ? 0o700 : 0o755;
    const own = secretDir || d === LAYOUT.dir || d.startsWith(`${LAYOUT.dir}/`);
    dirs.set(d, { kind: "dir", path: d, mode, uid: 0, gid: 0, own });
  }
  return [...dirs.values(), ...files].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0,
  );
}

/** Pure: one line per entry for --dry-run: path, type, mode, owner, size, sha256 or target. */
export function formatPlan(plan: readonly PlanEntry[]): string {
  return plan
    .map((e) => {
      const mode = e.kind === "symlink" ? "0777" : e.mode.toString(8).padStart(4, "0");
      const what =
        e.kind === "file"
          ? `${String(e.data.length).padStart(10)} ${e.sha256}`
          : e.kind === "symlink"
            ? `${"".padStart(10)} -> ${e.target}`
            : "";
      return `${e.kind.padEnd(7)} ${mode} ${e.uid}:${e.gid} ${e.path}${what ? `  ${what}` : ""}`;
    })
    .join("\n");
}

/** Pure: the plan as JSON-friendly objects (no file bytes). */
export function planJson(plan: readonly PlanEntry[]) {
  return plan.map((e) =>
    e.kind === "file"
      ? {
          kind: e.kind,
          path: e.path,
          mode: e.mode,
          uid: e.uid,
          gid: e.gid,
          size: e.data.length,
          sha256: e.sha256,
        }
      : e,
  );
}
