/**
 * `hero-init install` on a fresh node (seed 000): detect node vs VM, write
 * the update config, install the section's binaries with the update engine
 * (versioned directories + current links), register their services and the
 * update timer with the host's supervisor (systemd or zinit), all
 * idempotently: a second run changes nothing. Node-side `hero-init update`
 * runs the same engine from the written config.
 */

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import * as v from "valibot";
import { atomicWrite } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import { NODE_LAYOUT } from "../lib/layout.ts";
import { ENVIRONMENTS, type Environment, INSTALL_PATH_RE } from "../lib/manifest.ts";
import { SERVICE_NAME_RE } from "../lib/service-spec.ts";
import { locateKey, parseToml, stringifyToml } from "../lib/toml.ts";
import { keepMachineId, readMachineId } from "./state.ts";

/** What role detection looks at (read by {@link readFacts}). */
export interface MachineFacts {
  /** /proc/cpuinfo has the `hypervisor` flag. */
  hypervisorFlag: boolean;
  /** /sys/class/dmi/id/sys_vendor and product_name. */
  dmi: string;
  /** /proc/1/comm. */
  pid1: string;
}

const VM_DMI =
  /qemu|kvm|vmware|virtualbox|xen|microsoft corporation virtual|cloud hypervisor|bochs|amazon ec2|google compute|firecracker/i;

/** Pure: "vm" when hero-init is PID 1, the CPU reports a hypervisor or DMI names one; else "node". */
export function detectRole(f: MachineFacts): { role: "node" | "vm"; why: string } {
  if (/^hero-init|^preinit/.test(f.pid1)) return { role: "vm", why: "hero-init is PID 1" };
  if (f.hypervisorFlag) return { role: "vm", why: "the CPU reports a hypervisor" };
  if (VM_DMI.test(f.dmi)) return { role: "vm", why: `DMI says "${f.dmi.trim()}"` };
  return { role: "node", why: "no hypervisor flag, DMI and PID 1 look like bare metal" };
}

const read = (p: string) => {
  try {
    return readFileSync(p, "utf8");
  } catch {
    return "";
  }
};

/** Reads the facts from a root ("" for this machine). */
export function readFacts(root = ""): MachineFacts {
  return {
    hypervisorFlag: /^flags\s*:.*\bhypervisor\b/m.test(read(`${root}/proc/cpuinfo`)),
    dmi: `${read(`${root}/sys/class/dmi/id/sys_vendor`).trim()} ${read(`${root}/sys/class/dmi/id/product_name`).trim()}`,
    pid1: read(`${root}/proc/1/comm`).trim(),
  };
}

/** /etc/hero-init/update.toml on a node: what `hero-init update` follows. */
export const NodeUpdateSchema = v.strictObject({
  manifest: v.pipe(
    v.string(),
    v.regex(/^(https?|file):\/\//, "must be an http(s):// or file:// URL"),
  ),
  key: v.pipe(v.string(), v.regex(/^RW[A-Za-z0-9+/]{54}$/, "must be a minisign public key (RW…)")),
  env: v.optional(v.picklist(ENVIRONMENTS, "must be dev, testing, canary or production")),
  role: v.picklist(["node", "vm"]),
  pins: v.optional(v.array(v.string()), []),
  interval: v.optional(v.pipe(v.number(), v.integer(), v.minValue(60)), 3600),
});
export type NodeUpdateConfig = v.InferOutput<typeof NodeUpdateSchema>;

/** Parses update.toml with file, line and field in errors. */
export function parseNodeUpdateConfig(text: string, file: string): NodeUpdateConfig {
  const raw = parseToml(text, file);
  const r = v.safeParse(NodeUpdateSchema, raw);
  if (!r.success) {
    const issue = r.issues[0];
    const path = (issue.path ?? []).map((p) => p.key as string);
    throw new HeroError("schema", issue.message, {
      file,
      line: locateKey(text, path),
      field: path.join("."),
    });
  }
  return r.output;
}

/** The host's supervisor, as found under a root. */
export type HostSupervisor = "systemd" | "zinit" | "none";

export function detectSupervisor(root = ""): HostSupervisor {
  if (existsSync(`${root}/run/systemd/system`)) return "systemd";
  if (existsSync(`${root}/etc/zinit`) || existsSync(`${root}/var/run/zinit.sock`)) return "zinit";
  return "none";
}

/**
 * Pure: checks a value before it goes into a systemd unit or a zinit
 * service file. Names are file names (the supervisor's service-name rule),
 * commands are absolute paths of plain characters: no control character
 * can add a line, no space splits an argument, no `%`, `$`, `\`, quote or
 * `#` can mean anything to systemd or YAML. The manifest parser already
 * refuses such names and paths; this is the last check before the text.
 */
export function checkUnitValue(kind: "name" | "exec", value: string, what: string): string {
  const ok = kind === "name" ? SERVICE_NAME_RE.test(value) : INSTALL_PATH_RE.test(value);
  if (!ok)
    throw new HeroError(
      "unit",
      `${JSON.stringify(value)} cannot go into a service file: ${
        kind === "name"
          ? "a service name is letters, digits, _ @ . - (no / or ..)"
          : "a command is an absolute path of letters, digits, _ + @ . - and /"
      }`,
      { field: what },
    );
  return value;
}

/** Pure: the files that register a service binary and the update timer. */
export function registrationFiles(
  sup: HostSupervisor,
  o: { services: { name: string; exec: string }[]; interval: number; heroInit: string },
): Record<string, string> {
  const files: Record<string, string> = {};
  for (const s of o.services) {
    checkUnitValue("name", s.name, "services");
    checkUnitValue("exec", s.exec, `${s.name}: exec`);
  }
  checkUnitValue("exec", o.heroInit, "hero-init path");
  if (!Number.isInteger(o.interval) || o.interval < 1)
    throw new HeroError("unit", `interval ${o.interval} is not a whole number of seconds`);
  if (sup === "systemd") {
    for (const s of o.services)
      files[`/etc/systemd/system/${s.name}.service`] =
        `# written by hero-init install; edit freely, it is not overwritten\n[Unit]\nDescription=${s.name} (hero-init manifest)\nAfter=network-online.target\n\n[Service]\nExecStart=${s.exec}\nRestart=always\nRestartSec=2\n\n[Install]\nWantedBy=multi-user.target\n`;
    files["/etc/systemd/system/hero-init-update.service"] =
      `# written by hero-init install\n[Unit]\nDescription=hero-init update from the signed manifest\nWants=network-online.target\nAfter=network-online.target\n\n[Service]\nType=oneshot\nExecStart=${o.heroInit} update --config ${NODE_LAYOUT.updateConfig}\n`;
    files["/etc/systemd/system/hero-init-update.timer"] =
      `# written by hero-init install\n[Unit]\nDescription=hero-init update timer\n\n[Timer]\nOnBootSec=5min\nOnUnitActiveSec=${o.interval}s\nRandomizedDelaySec=${Math.round(o.interval / 10)}s\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n`;
  } else if (sup === "zinit") {
    for (const s of o.services)
      files[`/etc/zinit/${s.name}.yaml`] = `# written by hero-init install\nexec: ${s.exec}\n`;
    // zinit has no timers: a long-running updater that sleeps interval ± 10%.
    files["/etc/zinit/hero-init-update.yaml"] =
      `# written by hero-init install\nexec: ${o.heroInit} update --config ${NODE_LAYOUT.updateConfig} --every ${o.interval}\n`;
  }
  return files;
}

/** Writes files that do not exist yet (an operator's edits are kept); returns the paths written. */
export function writeMissing(root: string, files: Record<string, string>): string[] {
  const written: string[] = [];
  const top = resolve(root || "/");
  // Every path is checked before the first write.
  for (const path of Object.keys(files)) {
    const rel = relative(top, resolve(join(root, path)));
    if (!path.startsWith("/") || rel === "" || rel.startsWith("..") || rel.startsWith("/"))
      throw new HeroError("unit", `${path} is not a path inside ${top}`, { file: path });
  }
  for (const [path, content] of Object.entries(files)) {
    const p = join(root, path);
    if (existsSync(p)) continue;
    mkdirSync(dirname(p), { recursive: true });
    atomicWrite(p, content, 0o644);
    written.push(path);
  }
  return written;
}

/**
 * The machine id `install` runs with, read like the updater's
 * (`/etc/machine-id`, then the one kept in `stateDir`), or a new one that
 * `keep()` writes only after the run succeeded: a refused install leaves no
 * trace.
 */
export function installMachineId(stateDir: string): { id: string; keep(): void } {
  const have = readMachineId(stateDir);
  if (have) return { id: have, keep() {} };
  const id = randomBytes(16).toString("hex");
  return { id, keep: () => keepMachineId(stateDir, id) };
}

/** update.toml text for `install`. */
export function nodeConfigText(c: {
  manifest: string;
  key: string;
  env?: Environment;
  role: "node" | "vm";
  interval: number;
}): string {
  const doc: Record<string, unknown> = {
    manifest: c.manifest,
    key: c.key,
    role: c.role,
    interval: c.interval,
  };
  if (c.env) doc.env = c.env;
  return `# written by hero-init install: what \`hero-init update\` follows\n${stringifyToml(doc)}`;
}
