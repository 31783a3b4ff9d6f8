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
import { connect, socketPath } from "../guest/control/client.ts";
import { machineId, nextDelay, summary } from "../guest/pid1/updater.ts";
import { LAYOUT, NODE_LAYOUT } from "../lib/layout.ts";
import { ENVIRONMENTS, type Environment, parseManifest, sectionBinaries } from "../lib/manifest.ts";
import { parsePublicKey } from "../lib/minisign.ts";
import { atomicWrite, runUpdate, type UpdateHooks, type UpdateResult } from "../update/engine.ts";
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

const USAGE = `usage:
  hero-init update [--check] [--json] [-s SOCKET]        in a VM: ask PID 1 to check or apply now
  hero-init update --config FILE [--check] [--json] [--every SECONDS] [--root DIR]
                                                        on a node: run the update engine here
  hero-init install --manifest URL --key PUBKEY [--env ENV] [--role auto|node|vm] [--root DIR] [--json]
                                                        set up a fresh node (idempotent)
exit codes: 0 done (updated, up to date, or --check ran), 1 refused/failed/rolled back, 2 usage`;

const FAILED = new Set(["refused", "failed", "rolled-back"]);

function parseArgs(args: string[]): { opt: Map<string, string | true>; pos: string[] } {
  const opt = new Map<string, string | true>();
  const pos: string[] = [];
  const flags = new Set(["--check", "--json"]);
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (flags.has(a)) opt.set(a.slice(2), true);
    else if (a === "-s" || a.startsWith("--")) {
      const val = args[++i];
      if (val === undefined) throw new Error(`${a} needs a value`);
      opt.set(a === "-s" ? "socket" : a.slice(2), val);
    } else pos.push(a);
  }
  return { opt, pos };
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

async function runLocal(configFile: string, opt: Map<string, string | true>): Promise<number> {
  const root = (opt.get("root") as string | undefined) ?? "";
  const path = root ? join(root, configFile) : configFile;
  return runWithConfig(parseNodeUpdateConfig(readFileSync(path, "utf8"), path), opt);
}

async function runWithConfig(
  cfg: NodeUpdateConfig,
  opt: Map<string, string | true>,
  id?: string,
): Promise<number> {
  const root = (opt.get("root") as string | undefined) ?? "";
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
      nodeHooks(root ? "none" : detectSupervisor(), opt.get("socket") as string | undefined),
      { check: opt.get("check") === true },
    );
  const every = opt.get("every");
  if (typeof every === "string") {
    const s = Number(every);
    if (!Number.isInteger(s) || s < 60) throw new Error("--every needs a number of seconds ≥ 60");
    for (;;) {
      print(await once(), opt.get("json") === true);
      await Bun.sleep(nextDelay(s, 0.1));
    }
  }
  return print(await once(), opt.get("json") === true);
}

/** `hero-init update …`. */
export async function runUpdateCli(args: string[]): Promise<number> {
  let opt: Map<string, string | true>;
  try {
    ({ opt } = parseArgs(args));
  } catch (e) {
    console.error(`${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const json = opt.get("json") === true;
  const config = opt.get("config");
  try {
    if (typeof config === "string") return await runLocal(config, opt);
    const c = await connect(socketPath(opt.get("socket") as string | undefined));
    try {
      const r = (await c.call(opt.get("check") ? "update_check" : "update_apply")) as UpdateResult;
      return print(r, json);
    } finally {
      c.close();
    }
  } catch (e) {
    console.error(`update: ${(e as Error).message}`);
    return 1;
  }
}

/** `hero-init install …`. */
export async function runInstallCli(args: string[]): Promise<number> {
  try {
    const { opt } = parseArgs(args);
    const manifest = opt.get("manifest");
    const keyArg = opt.get("key");
    if (typeof manifest !== "string" || typeof keyArg !== "string")
      throw new Error(`install needs --manifest URL and --key PUBKEY\n${USAGE}`);
    // --key: the base64 line, or a minisign .pub file.
    let key = keyArg;
    if (!/^RW/.test(key)) key = readFileSync(key, "utf8").trim().split("\n").at(-1) ?? "";
    parsePublicKey(key);
    const env = opt.get("env") as string | undefined;
    if (env !== undefined && !(ENVIRONMENTS as readonly string[]).includes(env))
      throw new Error(`--env must be one of ${ENVIRONMENTS.join(", ")}`);
    const root = (opt.get("root") as string | undefined) ?? "";
    const roleOpt = (opt.get("role") as string | undefined) ?? "auto";
    if (!["auto", "node", "vm"].includes(roleOpt)) throw new Error("--role is auto, node or vm");
    const detected = detectRole(readFacts(root));
    const role = roleOpt === "auto" ? detected.role : (roleOpt as "node" | "vm");
    console.error(
      `install: role ${role}${roleOpt === "auto" ? ` (detected: ${detected.why})` : " (given)"}`,
    );
    // Nothing is written before the engine has verified the manifest with --key
    // (a refused run leaves the root as it was); the machine id is kept after.
    const id = installMachineId(`${root}${LAYOUT.updateState}`);
    const cfgText = nodeConfigText({
      manifest,
      key,
      env: env as Environment | undefined,
      role,
      interval: 3600,
    });
    const cfgPath = `${root}${NODE_LAYOUT.updateConfig}`;
    const sup = detectSupervisor(root);
    const code = await runWithConfig(
      parseNodeUpdateConfig(cfgText, "install options"),
      new Map([...opt, ["root", root]]),
      id.id,
    );
    if (code !== 0) return code;
    id.keep();
    // Only a node that installed its binaries follows the manifest from now on.
    if (!existsSync(cfgPath) || readFileSync(cfgPath, "utf8") !== cfgText) {
      mkdirSync(dirname(cfgPath), { recursive: true });
      atomicWrite(cfgPath, cfgText, 0o644);
    }
    // Register the binaries' services and the update timer (only files that do not exist yet).
    const m = parseManifest(
      readFileSync(`${root}${LAYOUT.updateState}/manifest.toml`, "utf8"),
      manifest,
    );
    const services = sectionBinaries(m, role, env as Environment | undefined).flatMap((b) =>
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
    return 0;
  } catch (e) {
    console.error(`install: ${String(e)}`);
    return 2;
  }
}
