/**
 * The config disk on the host: a small ext4 image, label HEROCFG, made with
 * `mke2fs -d` from a staging directory, holding a VM's vm.toml, service
 * files and secrets (layout: lib/config-disk.ts). The rootfs then carries
 * nothing per VM, so one base image serves many VMs and a config change
 * rewrites only this disk.
 */
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { CONFIG_DISK_LABEL, checkDirEntry } from "../lib/config-disk.ts";
import { HeroError } from "../lib/errors.ts";
import { LAYOUT } from "../lib/layout.ts";
import { runChecked } from "../sys/command.ts";

/** What goes on a config disk. */
export interface ConfigDiskContent {
  vmToml: string;
  /** name (without .yaml) → zinit YAML. */
  services?: Record<string, string>;
  /** file name in secrets/ → bytes. */
  secrets?: Record<string, Uint8Array>;
}

/** Guest paths of the per-VM secrets deploy_vm makes → their name on the disk and the vm.toml field naming them. */
const SECRET_NAMES: { name: string; field: [string, string] }[] = [
  { name: "agent.token", field: ["agent", "token_file"] },
  { name: "job.secret", field: ["job", "secret_file"] },
  { name: "mycelium.key", field: ["mycelium", "key_file"] },
];

/**
 * Pure: moves deploy_vm's secrets (guest path → bytes) onto the config disk.
 * Each one's vm.toml field is pointed at its tmpfs copy
 * (/run/hero-init/secrets/<name>), the agent token's default path included.
 * A secret with no vm.toml field (root's authorized_keys) is refused.
 */
export function secretsForConfigDisk(
  raw: Record<string, unknown>,
  secrets: Record<string, Uint8Array>,
): { raw: Record<string, unknown>; secrets: Record<string, Uint8Array> } {
  const out: Record<string, Uint8Array> = {};
  const cfg: Record<string, unknown> = { ...raw };
  const left = new Map(Object.entries(secrets));
  for (const { name, field } of SECRET_NAMES) {
    const [section, key] = field;
    const table = { ...((cfg[section] as Record<string, unknown> | undefined) ?? {}) };
    const guestPath =
      (table[key] as string | undefined) ??
      (section === "agent" ? LAYOUT.agentToken : section === "mycelium" ? LAYOUT.myceliumKey : "");
    const bytes = left.get(guestPath);
    if (!bytes || (section !== "agent" && cfg[section] === undefined)) continue;
    left.delete(guestPath);
    out[name] = bytes;
    table[key] = `${LAYOUT.secretsDir}/${name}`;
    cfg[section] = table;
  }
  for (const path of left.keys())
    throw new HeroError(
      "deploy",
      `${path}: this secret has no place on a config disk yet (ssh_authorized_keys needs the rootfs): deploy without --config-disk`,
      { field: path === "/root/.ssh/authorized_keys" ? "ssh_authorized_keys" : undefined },
    );
  return { raw: cfg, secrets: out };
}

/** Pure: the image size (MiB) for `bytes` of content: room for metadata, at least 4 MiB. */
export function configDiskSizeMB(bytes: number): number {
  return Math.max(4, Math.ceil((bytes * 2) / (1024 * 1024)) + 2);
}

/** Writes the config disk image at `path` (replacing it). Throws HeroError on a bad name. */
export function buildConfigDisk(path: string, c: ConfigDiskContent): void {
  const stage = mkdtempSync(join(tmpdir(), "hero-cfgdisk-"));
  try {
    let bytes = c.vmToml.length;
    writeFileSync(join(stage, "vm.toml"), c.vmToml, { mode: 0o600 });
    const put = (
      dir: "services" | "secrets",
      name: string,
      data: string | Uint8Array,
      mode: number,
    ) => {
      const size = typeof data === "string" ? Buffer.byteLength(data) : data.length;
      const why = checkDirEntry(dir, name, { isFile: true, isDirectory: false, size });
      if (why) throw new HeroError("deploy", `config disk: ${why}`, { field: dir });
      mkdirSync(join(stage, dir), { recursive: true, mode: 0o700 });
      writeFileSync(join(stage, dir, name), data, { mode });
      bytes += size;
    };
    for (const [name, yaml] of Object.entries(c.services ?? {}))
      put("services", `${name}.yaml`, yaml, 0o644);
    for (const [name, data] of Object.entries(c.secrets ?? {})) put("secrets", name, data, 0o600);
    mkdirSync(dirname(path), { recursive: true });
    const tmp = `${path}.tmp`;
    rmSync(tmp, { force: true });
    closeSync(openSync(tmp, "wx", 0o600)); // it holds secrets: 0600 before a byte is written
    runChecked(
      [
        "mke2fs",
        "-q",
        "-F",
        "-t",
        "ext4",
        "-L",
        CONFIG_DISK_LABEL,
        "-m",
        "0",
        "-O",
        "^has_journal",
        "-E",
        "root_owner=0:0",
        "-d",
        stage,
        tmp,
        `${configDiskSizeMB(bytes)}M`,
      ],
      { what: "mke2fs (config disk)" },
    );
    renameSync(tmp, path);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
