/**
 * `hero-init update [--check] [--json]` and `hero-init install`.
 *
 * In a VM, `update` asks PID 1 through the control socket (update_check /
 * update_apply): PID 1 owns the services it restarts. On a node, `update
 * --config /etc/hero-init/update.toml` runs the engine in this process and
 * restarts services through systemd or zinit; `--every SECONDS` keeps
 * running it (zinit has no timers). `install` sets a fresh node up once.
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
import { runUpdate, type UpdateHooks, type UpdateResult } from "../update/engine.ts";
import {
  detectRole,
  detectSupervisor,
  type HostSupervisor,
  installMachineId,
  type NodeUpdateConfig,
  nodeConfigText,
  parseNodeUpdateConfig,
  readFacts,
  registrationFiles,
  writeMissing,
} from "../update/install.ts";
import { type Command, runTree } from "./run.ts";

const EXIT_CODES =
  "exit codes: 0 done (updated, up to date, or --check ran), 1 refused/failed/rolled back, 2 usage";

const FAILED = new Set(["refused", "failed", "rolled-back"]);

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
  return FAILED.has(r.outcome) ? 1 : 0;
}

/** Restarts through the node's supervisor; health = still active after a few seconds. */
function nodeHooks(sup: HostSupervisor, sock?: string): UpdateHooks {
  const sh = async (argv: string[]) => {
    const p = Bun.spawn(argv, { stdout: "ignore", stderr: "pipe" });
    const code = await p.exited;
    return { code, err: (await new Response(p.stderr).text()).trim() };
  };
  return {
    async restart(names) {
      for (const n of names) {
        if (sup === "systemd") {
          const r = await sh(["systemctl", "restart", `${n}.service`]);
          if (r.code !== 0) console.error(`systemctl restart ${n}: ${r.err}`);
        } else if (sup === "zinit") {
          try {
            const c = await connect(socketPath(sock));
            await c
              .call("service_restart", [n])
              .catch((e) => console.error(`zinit restart ${n}: ${(e as Error).message}`));
            c.close();
          } catch (e) {
            console.error(`zinit: ${(e as Error).message}`);
          }
        }
      }
    },
    async health(names) {
      if (sup === "none") return [];
      await Bun.sleep(5000);
      const bad: string[] = [];
      for (const n of names) {
        if (sup === "systemd") {
          if ((await sh(["systemctl", "is-active", "--quiet", `${n}.service`])).code !== 0)
            bad.push(n);
        } else {
          try {
            const c = await connect(socketPath(sock));
            const s = (await c.call("service_status", [n])) as { state?: string };
            c.close();
            if (!/Running|Success/.test(String(s.state))) bad.push(n);
          } catch {
            bad.push(n);
          }
        }
      }
      return bad;
    },
    log: (m) => console.error(m),
  };
}

async function runLocal(configFile: string, opt: RunOptions): Promise<number> {
  const path = opt.root ? join(opt.root, configFile) : configFile;
  return runWithConfig(parseNodeUpdateConfig(readFileSync(path, "utf8"), path), opt);
}

async function runWithConfig(cfg: NodeUpdateConfig, opt: RunOptions, id?: string): Promise<number> {
  const { root } = opt;
  const stateDir = `${root}${LAYOUT.updateState}`;
  const keysFile = `${stateDir}/keys.pub`;
  const mid = id ?? machineId(stateDir);
  const once = () =>
    runUpdate(
      {
        manifestUrl: cfg.manifest,
        role: cfg.role,
        env: cfg.env,
        pins: cfg.pins,
        machineId: mid,
      },
      { pkgs: `${root}${LAYOUT.pkgs}`, root, stateDir, keysFile, seedKey: cfg.key },
      nodeHooks(root ? "none" : detectSupervisor(), opt.socket),
      { check: opt.check },
    );
  if (opt.every !== undefined) {
    const s = Number(opt.every);
    if (!Number.isInteger(s) || s < 60) throw new Error("--every needs a number of seconds ≥ 60");
    for (;;) {
      print(await once(), opt.json);
      await Bun.sleep(nextDelay(s, 0.1));
    }
  }
  return print(await once(), opt.json);
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
      if (a.config !== undefined) return await runLocal(a.config, opt);
      const c = await connect(socketPath(a.socket));
      try {
        const r = (await c.call(a.check ? "update_check" : "update_apply")) as UpdateResult;
        return print(r, opt.json);
      } finally {
        c.close();
      }
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
    description: "set up a fresh node (idempotent): binaries, update.toml, service registration",
    notes: EXIT_CODES,
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
  root: string;
  json: boolean;
}

/** Installs the manifest's binaries, then writes update.toml and the registration. */
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
  // Nothing is written before the engine has verified the manifest with --key
  // (a refused run leaves the root as it was); the machine id is kept after.
  const id = installMachineId(`${root}${LAYOUT.updateState}`);
  const cfgText = nodeConfigText({ manifest, key, env, role, interval: 3600 });
  const cfgPath = `${root}${NODE_LAYOUT.updateConfig}`;
  const sup = detectSupervisor(root);
  const code = await runWithConfig(
    parseNodeUpdateConfig(cfgText, "install options"),
    { root, check: false, json: o.json },
    id.id,
  );
  if (code !== 0) return code;
  id.keep();
  // Only a node that installed its binaries follows the manifest from now on.
  if (!existsSync(cfgPath) || readFileSync(cfgPath, "utf8") !== cfgText) {
    mkdirSync(dirname(cfgPath), { recursive: true });
    atomicWrite(cfgPath, cfgText, 0o644);
  }
  register(root, sup, manifest, role, env);
  return 0;
}

/** Registers the binaries' services and the update timer (only files that do not exist yet). */
function register(
  root: string,
  sup: HostSupervisor,
  manifestUrl: string,
  role: "node" | "vm",
  env?: Environment,
): void {
  const m = parseManifest(
    readFileSync(`${root}${LAYOUT.updateState}/manifest.toml`, "utf8"),
    manifestUrl,
  );
  const services = sectionBinaries(m, role, env).flatMap((b) =>
    b.services.map((s) => ({ name: s, exec: b.path ?? `/usr/bin/${b.name}` })),
  );
  const files = registrationFiles(sup, {
    services,
    interval: 3600,
    heroInit: "/usr/bin/hero-init",
  });
  const written = writeMissing(root, files);
  console.error(
    `install: supervisor ${sup}; ${written.length ? `wrote ${written.join(", ")}` : "registration already in place"}`,
  );
  if (sup === "systemd" && !root && written.length) {
    Bun.spawnSync(["systemctl", "daemon-reload"]);
    Bun.spawnSync([
      "systemctl",
      "enable",
      "--now",
      "hero-init-update.timer",
      ...services.map((s) => `${s.name}.service`),
    ]);
  }
}
