/**
 * `hero-init update [--check] [--json]`, `hero-init install` and
 * `hero-init node register`.
 *
 * In a VM, `update` asks PID 1 through the control socket (update_check /
 * update_apply): PID 1 owns the services it restarts. On a node, `update
 * --config /etc/hero-init/update.toml` runs the engine in this process and
 * restarts services through systemd or zinit; `--every SECONDS` keeps
 * running it (zinit has no timers). Both go through update/now.ts's
 * updateNow, as the UI's button does, so a pass never overlaps another.
 * `install` sets a fresh node up once (docs/nodes.md); `node register` is
 * the node registration's trigger: one pass, waited for with a bound.
 */

import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { defineCommand } from "citty";
import { connect, socketPath } from "../guest/control/client.ts";
import { machineId, nextDelay, summary } from "../guest/pid1/updater.ts";
import { atomicWrite } from "../lib/atomic-file.ts";
import { LAYOUT, NODE_LAYOUT } from "../lib/layout.ts";
import { ENVIRONMENTS, type Environment, parseManifest, sectionBinaries } from "../lib/manifest.ts";
import { parsePublicKey } from "../lib/minisign.ts";
import { VERSION } from "../lib/version.ts";
import { runUpdate, type UpdateHooks, type UpdateResult } from "../update/engine.ts";
import {
  detectRole,
  detectSupervisor,
  ensureMyceliumKey,
  type HostSupervisor,
  installMachineId,
  installSelf,
  type NodeUpdateConfig,
  nodeConfigText,
  nodeMyceliumArgs,
  parseNodeUpdateConfig,
  readFacts,
  registrationFiles,
  writeRegistration,
} from "../update/install.ts";
import { FAILED_OUTCOMES, nodePass, type UpdatePass, updateNow } from "../update/now.ts";
import { sshdSteps } from "../update/sshd.ts";
import { type Command, runTree, usageError } from "./run.ts";
import { openDaemon } from "./zinit-daemon.ts";

const EXIT_CODES =
  "exit codes: 0 done (updated, up to date, or --check ran), 1 refused/failed/rolled back, 2 usage";

/** What a run of the engine on a node is told by the command line. */
interface RunOptions {
  root: string;
  check: boolean;
  json: boolean;
  every?: string;
  socket?: string;
}

function print(r: UpdateResult, json: boolean): number {
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else {
    process.stdout.write(`${summary(r)}\n`);
    for (const h of r.held) process.stdout.write(`held: ${h.name} ${h.version}: ${h.reason}\n`);
  }
  return FAILED_OUTCOMES.has(r.outcome) ? 1 : 0;
}

/**
 * Restarts through the node's supervisor; health = still active after a few
 * seconds. A service the supervisor does not know (the first install runs
 * the engine before it registers the units) is neither restarted nor judged.
 */
/** `machine`: the hooks act on this machine (false under --root: a tree, not a system). */
function nodeHooks(sup: HostSupervisor, sock?: string, machine = true): UpdateHooks {
  const sh = async (argv: string[]) => {
    const p = Bun.spawn(argv, { stdout: "pipe", stderr: "pipe" });
    const [out, err] = await Promise.all([
      new Response(p.stdout).text(),
      new Response(p.stderr).text(),
    ]);
    return { code: await p.exited, out: out.trim(), err: err.trim() };
  };
  const zinit = async (method: string, n: string) =>
    (await zinitCall(sock, method, n)) as { state?: string };
  const known = async (n: string) => {
    if (sup === "systemd")
      return (
        (await sh(["systemctl", "show", "-p", "LoadState", "--value", `${n}.service`])).out ===
        "loaded"
      );
    if (sup === "zinit")
      return zinit("service_status", n).then(
        () => true,
        () => false,
      );
    return false;
  };
  let restarted: string[] = [];
  return {
    async restart(names) {
      restarted = [];
      for (const n of names) {
        if (!(await known(n))) continue;
        restarted.push(n);
        if (sup === "systemd") {
          const r = await sh(["systemctl", "restart", `${n}.service`]);
          if (r.code !== 0) console.error(`systemctl restart ${n}: ${r.err}`);
        } else
          await zinitRestart(sock, n).catch((e) =>
            console.error(`zinit restart ${n}: ${(e as Error).message}`),
          );
      }
    },
    async health(names) {
      const judged = names.filter((n) => restarted.includes(n));
      if (!judged.length) return [];
      await Bun.sleep(5000);
      const bad: string[] = [];
      for (const n of judged) {
        if (sup === "systemd") {
          if ((await sh(["systemctl", "is-active", "--quiet", `${n}.service`])).code !== 0)
            bad.push(n);
        } else {
          const s = await zinit("service_status", n).catch(() => ({ state: "unknown" }));
          if (!/Running|Success/.test(String(s.state))) bad.push(n);
        }
      }
      return bad;
    },
    // The environment's access section: sshd on or off; a changed drop-in is reloaded, not
    // restarted (update/sshd.ts: open sessions stay).
    async sshd(wanted, changed) {
      // systemd's ssh.service, or zinit's sshd service when there is one; nothing else.
      const systemd = sup === "systemd";
      if (!systemd && !(sup === "zinit" && (await known("sshd")))) return;
      for (const step of sshdSteps(wanted, changed)) {
        if (systemd) {
          const args = {
            start: ["enable", "--now"],
            stop: ["disable", "--now"],
            reload: ["reload-or-restart"],
          }[step];
          const r = await sh(["systemctl", ...args, "ssh.service"]);
          if (r.code !== 0) console.error(`systemctl ${args.join(" ")} ssh.service: ${r.err}`);
        } else if (step === "reload") {
          await zinitCall(sock, "service_kill", "sshd", "SIGHUP").catch((e) =>
            console.error(`zinit kill sshd SIGHUP: ${(e as Error).message}`),
          );
        } else {
          await zinit(step === "start" ? "service_start" : "service_stop", "sshd").catch((e) =>
            console.error(`zinit sshd: ${(e as Error).message}`),
          );
        }
      }
    },
    // Removed users and revoked keys: their open sessions end now, not at their next login.
    async endSessions(users) {
      if (!machine) return;
      const { killUidProcesses } = await import("../sys/processes.ts");
      for (const u of users)
        console.error(
          `access: ended the sessions of ${u.name} (uid ${u.uid}): ${killUidProcesses(u.uid)} processes`,
        );
    },
    log: (m) => console.error(m),
  };
}

/** One call to the node's zinit, real zinit (either protocol) or hero-init's. */
async function zinitCall(
  sock: string | undefined,
  method: string,
  name: string,
  ...rest: string[]
): Promise<unknown> {
  const d = await openDaemon(socketPath(sock));
  try {
    return await d.call(method, [name, ...rest]);
  } finally {
    d.close();
  }
}

/**
 * Restarts a zinit service: `service_restart`, or on zinit ≤ 0.2.14 (legacy
 * protocol, no restart) what its client does: stop, wait until it is down
 * (10 s at most), start.
 */
async function zinitRestart(sock: string | undefined, n: string): Promise<void> {
  try {
    await zinitCall(sock, "service_restart", n);
    return;
  } catch (e) {
    if (!/no service_restart/.test((e as Error).message)) throw e;
  }
  await zinitCall(sock, "service_stop", n);
  for (let i = 0; i < 100; i++) {
    const s = (await zinitCall(sock, "service_status", n)) as { state?: string };
    if (!/Running|Spawned/.test(String(s.state))) break;
    await Bun.sleep(100);
  }
  await zinitCall(sock, "service_start", n);
}

/** The node's pass over the config: one engine run at a time per state directory (update/now.ts). */
function localPass(cfg: NodeUpdateConfig, opt: RunOptions, id?: string): UpdatePass {
  const { root } = opt;
  const stateDir = `${root}${LAYOUT.updateState}`;
  return nodePass(stateDir, (check) =>
    runUpdate(
      {
        manifestUrl: cfg.manifest,
        role: cfg.role,
        env: cfg.env,
        pins: cfg.pins,
        machineId: id ?? machineId(stateDir),
      },
      {
        pkgs: `${root}${LAYOUT.pkgs}`,
        root,
        stateDir,
        keysFile: `${stateDir}/keys.pub`,
        seedKey: cfg.key,
      },
      nodeHooks(root ? "none" : detectSupervisor(), opt.socket, !root),
      { check },
    ),
  );
}

/** PID 1's updater through the control socket (in a VM). */
function controlPass(socket?: string): UpdatePass {
  const call = async (method: string) => {
    const c = await connect(socketPath(socket));
    try {
      return (await c.call(method)) as UpdateResult;
    } finally {
      c.close();
    }
  };
  return { check: () => call("update_check"), apply: () => call("update_apply") };
}

function readConfig(configFile: string, root: string): NodeUpdateConfig {
  const path = root ? join(root, configFile) : configFile;
  return parseNodeUpdateConfig(readFileSync(path, "utf8"), path);
}

async function runWithConfig(cfg: NodeUpdateConfig, opt: RunOptions, id?: string): Promise<number> {
  const pass = localPass(cfg, opt, id);
  const once = async () => {
    const r = await updateNow(pass, { check: opt.check });
    return r.timedOut ? 1 : print(r.result, opt.json);
  };
  if (opt.every !== undefined) {
    const s = Number(opt.every);
    if (!Number.isInteger(s) || s < 60) throw new Error("--every needs a number of seconds ≥ 60");
    for (;;) {
      await once();
      await Bun.sleep(nextDelay(s, 0.1));
    }
  }
  return once();
}

const updateCommand = defineCommand({
  meta: {
    name: "update",
    description:
      "in a VM: ask PID 1 to check or apply the signed manifest now; on a node (--config): run the update engine here",
    notes: EXIT_CODES,
  },
  args: {
    check: { type: "boolean", description: "check only: report what would change" },
    json: { type: "boolean", description: "print the result as JSON" },
    socket: { type: "string", alias: "s", valueHint: "path", description: "VM: control socket" },
    config: {
      type: "string",
      valueHint: "file",
      description: "node: update.toml (e.g. /etc/hero-init/update.toml)",
    },
    every: { type: "string", valueHint: "seconds", description: "node: keep running (≥ 60)" },
    root: { type: "string", valueHint: "dir", description: "node: act on this root" },
  },
  async run({ args: a }) {
    const opt: RunOptions = {
      root: a.root ?? "",
      check: a.check === true,
      json: a.json === true,
      every: a.every,
      socket: a.socket,
    };
    try {
      if (a.config !== undefined) return await runWithConfig(readConfig(a.config, opt.root), opt);
      const r = await updateNow(controlPass(a.socket), { check: opt.check });
      return r.timedOut ? 1 : print(r.result, opt.json);
    } catch (e) {
      console.error(`update: ${(e as Error).message}`);
      return 1;
    }
  },
});

/** `hero-init update`. */
export const update: Command = updateCommand;

/** `hero-init update …` (for tests); returns the exit code. */
export function runUpdateCli(args: string[]): Promise<number> {
  return runTree(update, args, ["hero-init", "update"]);
}

const ROLES = ["auto", "node", "vm"] as const;

const installCommand = defineCommand({
  meta: {
    name: "install",
    description:
      "set up a fresh node (idempotent): hero-init itself, the manifest's binaries, update.toml, services and the update timer",
    notes: `${EXIT_CODES}\nsee docs/nodes.md`,
  },
  args: {
    manifest: { type: "string", required: true, valueHint: "url", description: "manifest URL" },
    key: {
      type: "string",
      required: true,
      valueHint: "pubkey",
      description: "the manifest's public key: the base64 line or a minisign .pub file",
    },
    env: { type: "enum", options: [...ENVIRONMENTS], description: "environment" },
    role: { type: "enum", options: [...ROLES], default: "auto", description: "node or VM" },
    interval: {
      type: "string",
      valueHint: "seconds",
      description: "update timer interval (≥ 60, default 3600)",
    },
    peers: {
      type: "string",
      valueHint: "uri,…",
      description: "mycelium peers (comma-separated), when the manifest installs mycelium",
    },
    root: { type: "string", valueHint: "dir", description: "install into this root" },
    json: { type: "boolean", description: "print the engine's result as JSON" },
  },
  async run({ args: a }) {
    try {
      return await installNode({
        manifest: a.manifest,
        keyArg: a.key,
        env: a.env as Environment | undefined,
        role: a.role as (typeof ROLES)[number],
        interval: a.interval === undefined ? 3600 : Number(a.interval),
        peers: a.peers ? a.peers.split(",").filter(Boolean) : [],
        root: a.root ?? "",
        json: a.json === true,
      });
    } catch (e) {
      console.error(`install: ${String(e)}`);
      return 2;
    }
  },
});

/** `hero-init install`. */
export const install: Command = installCommand;

/** `hero-init install …` (for tests); returns the exit code. */
export function runInstallCli(args: string[]): Promise<number> {
  return runTree(install, args, ["hero-init", "install"]);
}

interface InstallOptions {
  manifest: string;
  /** --key: the base64 line, or a minisign .pub file. */
  keyArg: string;
  env?: Environment;
  role: (typeof ROLES)[number];
  interval: number;
  peers: string[];
  root: string;
  json: boolean;
}

/** The compiled hero-init this process runs from (null when run from source by Bun). */
function selfBinary(): string | null {
  return Bun.main.startsWith("/$bunfs/") ? process.execPath : null;
}

/** Installs the manifest's binaries and hero-init, then writes update.toml and the registration. */
async function installNode(o: InstallOptions): Promise<number> {
  const { manifest, env, root } = o;
  let key = o.keyArg;
  if (!/^RW/.test(key)) key = readFileSync(key, "utf8").trim().split("\n").at(-1) ?? "";
  parsePublicKey(key);
  const detected = detectRole(readFacts(root));
  const role = o.role === "auto" ? detected.role : o.role;
  console.error(
    `install: role ${role}${o.role === "auto" ? ` (detected: ${detected.why})` : " (given)"}`,
  );
  // Checked (schema: interval, peers) before anything is written.
  const cfgText = nodeConfigText({
    manifest,
    key,
    env,
    role,
    interval: o.interval,
    peers: o.peers,
  });
  const cfg = parseNodeUpdateConfig(cfgText, "install options");
  // Nothing is written before the engine has verified the manifest with --key
  // (a refused run leaves the root as it was); the machine id is kept after.
  const id = installMachineId(`${root}${LAYOUT.updateState}`);
  const cfgPath = `${root}${NODE_LAYOUT.updateConfig}`;
  const sup = detectSupervisor(root);
  const code = await runWithConfig(cfg, { root, check: false, json: o.json }, id.id);
  if (code !== 0) return code;
  id.keep();
  const self = selfBinary();
  if (self && installSelf({ root, pkgs: `${root}${LAYOUT.pkgs}`, self, version: VERSION }))
    console.error(`install: hero-init ${VERSION} installed at /usr/bin/hero-init`);
  else if (!self) console.error("install: running from source: /usr/bin/hero-init not installed");
  // Only a node that installed its binaries follows the manifest from now on.
  if (!existsSync(cfgPath) || readFileSync(cfgPath, "utf8") !== cfgText) {
    mkdirSync(dirname(cfgPath), { recursive: true });
    atomicWrite(cfgPath, cfgText, 0o644);
  }
  await register(root, sup, cfg);
  return 0;
}

/** Registers the binaries' services and the update timer, and starts what is new or changed. */
async function register(root: string, sup: HostSupervisor, cfg: NodeUpdateConfig): Promise<void> {
  const m = parseManifest(
    readFileSync(`${root}${LAYOUT.updateState}/manifest.toml`, "utf8"),
    cfg.manifest,
  );
  const binaries = sectionBinaries(m, cfg.role, cfg.env);
  const services = binaries.flatMap((b) =>
    b.services.map((s) => ({
      name: s,
      exec: b.path ?? `/usr/bin/${b.name}`,
      args: b.name === "mycelium" ? nodeMyceliumArgs(cfg.mycelium) : [],
    })),
  );
  if (binaries.some((b) => b.name === "mycelium") && ensureMyceliumKey(root, cfg.mycelium.key_file))
    console.error(`install: mycelium key made at ${cfg.mycelium.key_file} (0600)`);
  const files = registrationFiles(sup, {
    services,
    interval: cfg.interval,
    heroInit: "/usr/bin/hero-init",
  });
  const { created, rewritten } = writeRegistration(root, files);
  const what = [...created.map((p) => `wrote ${p}`), ...rewritten.map((p) => `rewrote ${p}`)];
  console.error(
    `install: supervisor ${sup}; ${what.length ? what.join(", ") : "registration already in place"}`,
  );
  if (root || (!created.length && !rewritten.length)) return;
  if (sup === "zinit") return activateZinit(services, created, rewritten);
  if (sup !== "systemd") return;
  const unit = (p: string) => p.slice(p.lastIndexOf("/") + 1);
  const systemctl = (...argv: string[]) => {
    const r = Bun.spawnSync(["systemctl", ...argv], { stdout: "ignore", stderr: "pipe" });
    if (r.exitCode !== 0)
      console.error(`install: systemctl ${argv.join(" ")}: ${r.stderr.toString().trim()}`);
  };
  systemctl("daemon-reload");
  const units = ["hero-init-update.timer", ...services.map((s) => `${s.name}.service`)];
  systemctl("enable", "--now", ...units);
  const changed = rewritten.map(unit).filter((u) => u !== "hero-init-update.service");
  if (changed.length) systemctl("restart", ...changed);
}

/**
 * zinit reads a service file when told to monitor it: a new one is
 * monitored (started); a rewritten one is stopped, forgotten and monitored
 * again, so the new file is what runs.
 */
async function activateZinit(
  services: { name: string }[],
  created: string[],
  rewritten: string[],
): Promise<void> {
  const name = (p: string) => p.slice(p.lastIndexOf("/") + 1, -".yaml".length);
  const names = ["hero-init-update", ...services.map((s) => s.name)];
  for (const n of names) {
    const file = `/etc/zinit/${n}.yaml`;
    const steps = created.includes(file)
      ? ["service_monitor"]
      : rewritten.includes(file)
        ? ["service_stop", "service_forget", "service_monitor"]
        : [];
    for (const step of steps)
      await zinitCall(undefined, step, name(file)).catch((e) =>
        console.error(`install: zinit ${step.slice(8)} ${n}: ${(e as Error).message}`),
      );
  }
}

const registerCommand = defineCommand({
  meta: {
    name: "register",
    description:
      "node_register's trigger: run one update pass now and wait for it (bounded) before the registration goes on",
    notes:
      "exit codes: 0 the pass finished (updated or up to date), 1 refused/failed/rolled back, 124 still running after --timeout (in a VM PID 1 finishes it; on a node it stops with this command and the next timer run completes it), 2 usage\nsee docs/nodes.md",
  },
  args: {
    config: {
      type: "string",
      valueHint: "file",
      description: `node: update.toml (default ${NODE_LAYOUT.updateConfig} when it exists; else PID 1 of this VM)`,
    },
    timeout: {
      type: "string",
      valueHint: "seconds",
      description: "how long to wait for the pass (default 600)",
    },
    socket: { type: "string", alias: "s", valueHint: "path", description: "VM: control socket" },
    root: { type: "string", valueHint: "dir", description: "node: act on this root" },
    json: { type: "boolean", description: "print the result as JSON" },
  },
  async run({ args: a }) {
    const timeout = a.timeout === undefined ? 600 : Number(a.timeout);
    if (!Number.isFinite(timeout) || timeout <= 0)
      throw usageError(`--timeout ${a.timeout}: a number of seconds > 0`, "timeout");
    const root = a.root ?? "";
    const config =
      a.config ??
      (existsSync(`${root}${NODE_LAYOUT.updateConfig}`) ? NODE_LAYOUT.updateConfig : undefined);
    try {
      const opt: RunOptions = { root, check: false, json: a.json === true, socket: a.socket };
      const pass = config ? localPass(readConfig(config, root), opt) : controlPass(a.socket);
      const r = await updateNow(pass, { timeoutMs: timeout * 1000 });
      if (r.timedOut) {
        console.error(
          `register: the update pass is still running after ${timeout} s; going on without it${config ? " (stopped here: the next timer run completes it)" : " (PID 1 finishes it)"}`,
        );
        return 124;
      }
      return print(r.result, opt.json);
    } catch (e) {
      console.error(`register: ${(e as Error).message}`);
      return 1;
    }
  },
});

/** `hero-init node register|…`. */
export const node: Command = defineCommand({
  meta: { name: "node", description: "the node's lifecycle hooks (docs/nodes.md)" },
  subCommands: { register: registerCommand },
});

/** `hero-init node …` (for tests); returns the exit code. */
export function runNodeCli(args: string[]): Promise<number> {
  return runTree(node, args, ["hero-init", "node"]);
}
