/**
 * `hero-init install` on a fresh node (seed 000; docs/nodes.md): detect node
 * vs VM, write the update config, install the section's binaries with the
 * update engine (versioned directories + current links) and hero-init
 * itself, make mycelium's key, register their services and the updater
 * with the host's supervisor (systemd units with restart policy,
 * dependencies and hardening, a timer; or zinit files), all idempotently:
 * a second run changes nothing. Node-side `hero-init update` runs the same
 * engine from the written config.
 */

import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import * as v from "valibot";
import { atomicWrite, replaceFile, switchLink } from "../lib/atomic-file.ts";
import { HeroError } from "../lib/errors.ts";
import { IdentitySchema } from "../lib/identity.ts";
import { LAYOUT, NODE_LAYOUT } from "../lib/layout.ts";
import { ENVIRONMENTS, type Environment, INSTALL_PATH_RE } from "../lib/manifest.ts";
import { generateKey, isPeerUri } from "../lib/mycelium.ts";
import { SERVICE_NAME_RE } from "../lib/service-spec.ts";
import { execLine, renderUnit } from "../lib/systemd-units.ts";
import { locateKey, parseToml } from "../lib/toml.ts";
import { stringifyToml } from "../lib/toml-stringify.ts";
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
  /** The node's identity (farmer id, farming pool, registrars, description): lib/identity.ts. */
  identity: v.optional(IdentitySchema),
  /** mycelium on the node (when the manifest installs it): its key file and peers. */
  mycelium: v.optional(
    v.strictObject({
      peers: v.optional(
        v.array(
          v.pipe(
            v.string(),
            v.check(isPeerUri, "must be a peer URI like tcp://192.0.2.10:9651"),
            v.check((p) => /^[A-Za-z0-9_.:/[\]-]+$/.test(p), "must be a plain peer URI"),
          ),
        ),
        [],
      ),
      key_file: v.optional(
        v.pipe(v.string(), v.regex(INSTALL_PATH_RE, "must be an absolute path")),
        LAYOUT.myceliumKey,
      ),
    }),
    {},
  ),
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

/** One service to register: its name, the binary's install path and its arguments. */
export interface RegisteredService {
  name: string;
  exec: string;
  args?: readonly string[];
}

/** The first line of every file `install` writes: such a file is rewritten by the next install. */
export const REGISTRATION_MARK = "# written by hero-init install";

/**
 * Pure: one argument after a service's binary. Peer URIs and paths pass;
 * nothing systemd or a YAML scalar could read otherwise does (no space,
 * quote, `%`, `$`, `\\`, `#`, `;` or control character).
 */
export function checkUnitArg(value: string, what: string): string {
  if (!/^[A-Za-z0-9_.,:@/[\]+=-]{1,512}$/.test(value) || value.startsWith("-="))
    throw new HeroError(
      "unit",
      `${JSON.stringify(value)} cannot be an argument in a service file: letters, digits and _ . , : @ / [ ] + = - only`,
      { field: what },
    );
  return value;
}

/**
 * Hardening every manifest service gets under systemd: what any daemon of
 * the fleet tolerates (mycelium needs CAP_NET_ADMIN and /dev/net/tun, chvm
 * /dev/kvm and /var, so no ProtectSystem, PrivateDevices or capability cuts).
 */
const SERVICE_HARDENING = {
  NoNewPrivileges: true,
  PrivateTmp: true,
  ProtectHome: true,
  ProtectControlGroups: true,
  RestrictSUIDSGID: true,
  LockPersonality: true,
} as const;

/** `# written by hero-init install…` as renderUnit's comment (it adds the `# `). */
const mark = (rest = "") => `${REGISTRATION_MARK.slice(2)}${rest}`;
const NETWORK_ONLINE = { Wants: "network-online.target", After: "network-online.target" };

/** The values were checked by registrationFiles (checkUnitValue, checkUnitArg). */
function systemdService(s: RegisteredService): string {
  return renderUnit({
    comment: [
      mark(
        `: rewritten by the next install; local changes go in a drop-in (systemctl edit ${s.name})`,
      ),
    ],
    unit: {
      Description: `${s.name} (hero-init manifest)`,
      ...NETWORK_ONLINE,
      StartLimitIntervalSec: 0,
    },
    service: {
      Type: "simple",
      ExecStart: [s.exec, ...(s.args ?? [])].join(" "),
      Restart: "always",
      RestartSec: 2,
      ...SERVICE_HARDENING,
    },
    install: { WantedBy: "multi-user.target" },
  });
}

function systemdUpdate(heroInit: string, interval: number): Record<string, string> {
  return {
    "/etc/systemd/system/hero-init-update.service": renderUnit({
      comment: [mark()],
      unit: { Description: "hero-init update from the signed manifest", ...NETWORK_ONLINE },
      service: {
        Type: "oneshot",
        ExecStart: execLine([heroInit, "update", "--config", NODE_LAYOUT.updateConfig]),
        TimeoutStartSec: "30min",
        Nice: 10,
        IOSchedulingClass: "idle",
        NoNewPrivileges: true,
        PrivateTmp: true,
        // No ProtectHome: the environment's access section writes users' ~/.ssh (docs/environments.md).
      },
    }),
    "/etc/systemd/system/hero-init-update.timer": renderUnit({
      comment: [mark()],
      unit: { Description: "hero-init update timer" },
      timer: {
        // OnBootSec ≤ interval: a short test interval is not held back by the boot delay.
        OnBootSec: `${Math.min(300, interval)}s`,
        OnUnitActiveSec: `${interval}s`,
        RandomizedDelaySec: `${Math.round(interval / 10)}s`,
      },
      install: { WantedBy: "timers.target" },
    }),
  };
}

/** Pure: the files that register the manifest's services and the update timer. */
export function registrationFiles(
  sup: HostSupervisor,
  o: { services: RegisteredService[]; interval: number; heroInit: string },
): Record<string, string> {
  const files: Record<string, string> = {};
  for (const s of o.services) {
    checkUnitValue("name", s.name, "services");
    checkUnitValue("exec", s.exec, `${s.name}: exec`);
    for (const a of s.args ?? []) checkUnitArg(a, `${s.name}: args`);
  }
  checkUnitValue("exec", o.heroInit, "hero-init path");
  if (!Number.isInteger(o.interval) || o.interval < 1)
    throw new HeroError("unit", `interval ${o.interval} is not a whole number of seconds`);
  if (sup === "systemd") {
    for (const s of o.services) files[`/etc/systemd/system/${s.name}.service`] = systemdService(s);
    Object.assign(files, systemdUpdate(o.heroInit, o.interval));
  } else if (sup === "zinit") {
    for (const s of o.services)
      files[`/etc/zinit/${s.name}.yaml`] =
        `${REGISTRATION_MARK}\nexec: ${[s.exec, ...(s.args ?? [])].join(" ")}\n`;
    // zinit has no timers: a long-running updater that sleeps interval ± 10%.
    files["/etc/zinit/hero-init-update.yaml"] =
      `${REGISTRATION_MARK}\nexec: ${o.heroInit} update --config ${NODE_LAYOUT.updateConfig} --every ${o.interval}\n`;
  }
  return files;
}

/**
 * Writes the registration: a file that is missing, or that an earlier
 * install wrote (its first line is {@link REGISTRATION_MARK}) and whose
 * content differs. A file without the mark is the operator's and is kept.
 * Returns the paths written, new ones and rewritten ones apart.
 */
export function writeRegistration(
  root: string,
  files: Record<string, string>,
): { created: string[]; rewritten: string[] } {
  const created: string[] = [];
  const rewritten: string[] = [];
  const top = resolve(root || "/");
  // Every path is checked before the first write.
  for (const path of Object.keys(files)) {
    const rel = relative(top, resolve(join(root, path)));
    if (!path.startsWith("/") || rel === "" || rel.startsWith("..") || rel.startsWith("/"))
      throw new HeroError("unit", `${path} is not a path inside ${top}`, { file: path });
  }
  for (const [path, content] of Object.entries(files)) {
    const p = join(root, path);
    if (existsSync(p)) {
      const have = read(p);
      if (have === content || !have.startsWith(REGISTRATION_MARK)) continue;
      atomicWrite(p, content, 0o644);
      rewritten.push(path);
      continue;
    }
    mkdirSync(dirname(p), { recursive: true });
    atomicWrite(p, content, 0o644);
    created.push(path);
  }
  return { created, rewritten };
}

/** Pure: mycelium's arguments on a node: its key file, TUN name and the config's peers (last: `--peers` takes every value after it). */
export function nodeMyceliumArgs(m: { key_file: string; peers: readonly string[] }): string[] {
  return [
    "-k",
    m.key_file,
    "--tun-name",
    "mycelium",
    ...(m.peers.length ? ["--peers", ...m.peers] : []),
  ];
}

/**
 * A node's mycelium key: made once (0600 in a 0700 directory) and kept, so
 * the node's overlay address survives reinstalls. Returns whether it was made.
 */
export function ensureMyceliumKey(root: string, keyFile: string): boolean {
  const p = join(root, keyFile);
  if (existsSync(p)) return false;
  mkdirSync(dirname(p), { recursive: true, mode: 0o700 });
  atomicWrite(p, generateKey(), 0o600);
  return true;
}

/**
 * Puts this hero-init at /usr/bin/hero-init the way the engine installs a
 * binary (pkgs/hero-init/<version>/hero-init behind the `current` link), so
 * the update timer has a hero-init to run even when `[node]` does not list
 * it, and a later manifest that does list it updates it like any binary.
 * Nothing is done when the engine already manages one. Returns whether it
 * installed.
 */
export function installSelf(o: {
  root: string;
  pkgs: string;
  self: string;
  version: string;
}): boolean {
  const dir = join(o.pkgs, "hero-init");
  const link = join(o.root, "/usr/bin/hero-init");
  const target = join(o.pkgs.slice(o.root.length) || "/", "hero-init", "current", "hero-init");
  if (existsSync(join(dir, "current"))) {
    if (readLink(link) !== target) switchLinkIn(link, target);
    return false;
  }
  const file = join(dir, o.version, "hero-init");
  mkdirSync(dirname(file), { recursive: true });
  replaceFile(file, (tmp) => copyFileSync(o.self, tmp), { mode: 0o755 });
  switchLink(join(dir, "current"), o.version);
  switchLinkIn(link, target);
  return true;
}

const readLink = (p: string) => {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
};

function switchLinkIn(link: string, target: string): void {
  mkdirSync(dirname(link), { recursive: true });
  switchLink(link, target);
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
  peers?: readonly string[];
}): string {
  const doc: Record<string, unknown> = {
    manifest: c.manifest,
    key: c.key,
    role: c.role,
    interval: c.interval,
  };
  if (c.env) doc.env = c.env;
  if (c.peers?.length) doc.mycelium = { peers: [...c.peers] };
  return `# written by hero-init install: what \`hero-init update\` follows\n${stringifyToml(doc)}`;
}
