/**
 * `hero-init init`: the supervisor without the machine (no mounts, no
 * network, no reboot) — for tests in a pid namespace and for containers.
 * Becomes a child subreaper so orphans of its services come back to it.
 */
import { readFileSync } from "node:fs";
import { startSupervision } from "../guest/pid1/services.ts";
import { type ShutdownKind, shutdown } from "../guest/pid1/shutdown.ts";
import { setCgroupRoot } from "../guest/supervisor/cgroup.ts";
import { scheduleReap } from "../guest/supervisor/reaper.ts";
import { log } from "../lib/log.ts";
import { defaultVmConfig, parseVmConfig } from "../lib/vm-config.ts";
import { setChildSubreaper } from "../sys/ffi.ts";

/** Parsed `init` options. */
export interface InitModeOptions {
  configDir?: string;
  sockets: string[];
  vmConfig?: string;
  cgroupRoot?: string;
  ringSize?: number;
}

/** Pure: parses `init` arguments (zinit's -c and -b, plus hero-init's). */
export function parseInitArgs(args: string[]): InitModeOptions | { error: string } {
  const o: InitModeOptions = { sockets: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const val = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    try {
      if (a === "-c" || a === "--config") o.configDir = val();
      else if (a === "-s" || a === "--socket") o.sockets.push(val());
      else if (a === "-b" || a === "--buffer") o.ringSize = Number(val());
      else if (a === "--vm-config") o.vmConfig = val();
      else if (a === "--cgroup-root") o.cgroupRoot = val();
      else if (a === "--container")
        continue; // zinit's flag: nothing to change here
      else return { error: `init: unknown option ${a}` };
    } catch (e) {
      return { error: `init: ${(e as Error).message}` };
    }
  }
  if (o.ringSize !== undefined && !(Number.isInteger(o.ringSize) && o.ringSize >= 10))
    return { error: "init: -b needs a number ≥ 10" };
  return o;
}

/** Runs until SIGTERM/SIGINT or a shutdown request; resolves with the exit code. */
export async function runInitMode(args: string[]): Promise<number> {
  const o = parseInitArgs(args);
  if ("error" in o) {
    process.stderr.write(`${o.error}\n`);
    return 2;
  }
  let config = defaultVmConfig();
  if (o.vmConfig) {
    const loaded = parseVmConfig(readFileSync(o.vmConfig, "utf8"), o.vmConfig);
    for (const e of loaded.errors) log.error("config", `CONFIG ERROR ${e.toString()}`);
    config = loaded.config;
  }
  if (o.ringSize) config.services.ring_size = o.ringSize;
  try {
    setChildSubreaper();
  } catch (e) {
    log.warn("init", (e as Error).message);
  }
  if (o.cgroupRoot) setCgroupRoot(o.cgroupRoot);
  let done: (code: number) => void = () => {};
  const finished = new Promise<number>((r) => {
    done = r;
  });
  const end = (kind: ShutdownKind, reason: string) => {
    shutdown(kind, reason).then(
      () => done(0),
      () => done(1),
    );
  };
  process.on("SIGCHLD", scheduleReap);
  process.on("SIGTERM", () => end("poweroff", "SIGTERM"));
  process.on("SIGINT", () => end("poweroff", "SIGINT"));
  setInterval(scheduleReap, 1000);
  startSupervision({
    config,
    configDir: o.configDir,
    sockets: o.sockets.length ? o.sockets : undefined,
    cgroups: o.cgroupRoot !== undefined,
    power: end,
  });
  log.info("init", "READY (init mode)");
  return finished;
}
