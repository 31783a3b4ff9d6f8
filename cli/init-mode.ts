/**
 * `hero-init init` / `zinit [-s SOCKET] init [-c DIR] [--container]`: the
 * supervisor without the machine (no mounts, no network, no reboot) — for
 * tests in a pid namespace and for containers, also as PID 1 of a pid
 * namespace (cli/main.ts). zinit's global -s before `init` is its socket,
 * as -s after it. Becomes a child subreaper so orphans of its services
 * come back to it.
 */
import { readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { type ShutdownKind, shutdown } from "../guest/pid1/shutdown.ts";
import { startSupervision } from "../guest/pid1/supervision.ts";
import { setCgroupRoot } from "../guest/supervisor/cgroup.ts";
import { scheduleReap } from "../guest/supervisor/reaper.ts";
import { log } from "../lib/log.ts";
import { defaultVmConfig, parseVmConfig } from "../lib/vm-config.ts";
import { setChildSubreaper } from "../sys/ffi.ts";
import { type Command, optionValues, runData, usageError } from "./run.ts";

/** Parsed `init` options. */
export interface InitModeOptions {
  configDir?: string;
  sockets: string[];
  vmConfig?: string;
  cgroupRoot?: string;
  ringSize?: number;
}

const INIT_ARGS = {
  config: {
    type: "string",
    alias: "c",
    valueHint: "dir",
    description: "service files directory (default /etc/zinit)",
  },
  socket: {
    type: "string",
    alias: "s",
    valueHint: "path",
    description: "control socket to listen on (repeatable; default the zinit sockets)",
  },
  buffer: { type: "string", alias: "b", valueHint: "lines", description: "log ring size (≥ 10)" },
  "vm-config": { type: "string", valueHint: "file", description: "vm.toml to read" },
  "cgroup-root": {
    type: "string",
    valueHint: "dir",
    description: "put each service in a cgroup under DIR",
  },
  container: {
    type: "boolean",
    description: "zinit's flag: this mode always ends on SIGTERM/SIGINT (never reboots)",
  },
} as const;

/** Pure: the `init` options of the parsed arguments and every -s given. */
export function initOptions(
  a: { config?: string; buffer?: string; "vm-config"?: string; "cgroup-root"?: string },
  sockets: string[],
): InitModeOptions {
  const o: InitModeOptions = {
    configDir: a.config,
    sockets,
    vmConfig: a["vm-config"],
    cgroupRoot: a["cgroup-root"],
  };
  if (a.buffer !== undefined) {
    o.ringSize = Number(a.buffer);
    if (!(Number.isInteger(o.ringSize) && o.ringSize >= 10))
      throw usageError("-b needs a number ≥ 10");
  }
  return o;
}

const initCommand = defineCommand({
  meta: {
    name: "init",
    description: "run the supervisor outside PID 1 (no mounts, no network, no reboot)",
    usageExit: 2,
  },
  args: INIT_ARGS,
  run: ({ args, rawArgs, data }) => {
    // zinit's order: `zinit -s SOCK init -c DIR` (the root's -s), or -s after `init`.
    const up = runData(data).up.socket;
    const sockets = [
      ...(typeof up === "string" ? [up] : []),
      ...optionValues(rawArgs, INIT_ARGS, "socket"),
    ];
    return runInitMode(initOptions(args, sockets));
  },
});

/** `hero-init init` (and `zinit init`). */
export const init: Command = initCommand;

/** Runs until SIGTERM/SIGINT or a shutdown request; resolves with the exit code. */
export async function runInitMode(o: InitModeOptions): Promise<number> {
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
  // Unlike PID 1 (guest/pid1/run.ts), READY here follows the services' start: no probe waits
  // on this process, and its callers (tests, containers) read READY as "services loaded".
  await startSupervision({
    config,
    configDir: o.configDir,
    sockets: o.sockets.length ? o.sockets : undefined,
    cgroups: o.cgroupRoot !== undefined,
    power: end,
  }).startServices();
  log.info("init", "READY (init mode)");
  return finished;
}
