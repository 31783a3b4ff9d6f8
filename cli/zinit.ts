/**
 * The zinit-compatible commands: `zinit [-s SOCKET] [-d] <command>` (or
 * `hero-init <command>`), each a citty command (cli/index.ts puts them
 * under both roots). zinit's commands, output formats, texts and exit
 * codes (list, status and stats print YAML; an error is its text on stderr,
 * exit 1; usage errors exit 1 too), against hero-init or a real zinit of
 * either protocol (cli/zinit-daemon.ts); plus `--json` before or after the
 * command.
 */
import type { CommandDef } from "citty";
import { socketPath } from "../guest/control/client.ts";
import { legacyText } from "../guest/control/errors.ts";
import { isHeroError } from "../lib/errors.ts";
import { type Command, runData } from "./run.ts";
import { type Daemon, openDaemon } from "./zinit-daemon.ts";

/**
 * Pure: a YAML string scalar as zinit's emitter (yaml-rust 0.4 `need_quotes`)
 * writes it: bare unless it could be misread, else double-quoted with JSON
 * escapes. `Error(Exited(Pid(4242), 1))` is quoted because of the comma.
 */
export function yamlScalar(v: string): string {
  const reserved =
    /^(yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|null|Null|NULL|~)$/;
  const quote =
    v === "" ||
    v.startsWith(" ") ||
    v.endsWith(" ") ||
    /^[&*?|\-<>=!%@.]/.test(v) ||
    v.startsWith("0x") ||
    /[:{}[\],#`"'\\]/.test(v) ||
    [...v].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) ||
    reserved.test(v) ||
    (v.trim() !== "" && !Number.isNaN(Number(v)));
  return quote ? JSON.stringify(v) : v;
}

/** Pure: YAML for a flat name → value map, as zinit prints it (serde_yaml 0.8: "---", final newline). */
export function yamlMap(map: Record<string, unknown>): string {
  const lines = Object.entries(map).map(([k, v]) => `\n${yamlScalar(k)}: ${yamlScalar(String(v))}`);
  return lines.length ? `---${lines.join("")}\n` : "---\n{}\n";
}

/** Pure: zinit's `status` rendering (struct field order name, pid, state, target, after). */
export function renderStatus(s: {
  name: string;
  pid: number;
  state: string;
  target: string;
  after: Record<string, string>;
}): string {
  const after = Object.entries(s.after);
  const deps = after.length
    ? `\n${after.map(([k, v]) => `  ${yamlScalar(k)}: ${yamlScalar(v)}`).join("\n")}`
    : " {}";
  return `---\nname: ${yamlScalar(s.name)}\npid: ${s.pid}\nstate: ${yamlScalar(s.state)}\ntarget: ${s.target}\nafter:${deps}\n`;
}

/** Pure: a float as serde_yaml 0.8 writes an f32 (dtoa: always a fraction). */
function yamlFloat(n: number): string {
  return Number.isInteger(n) ? `${n}.0` : String(n);
}

interface Usage {
  pid: number;
  memory_usage: number;
  cpu_usage: number;
}

/** Pure: zinit 0.2.28's `stats` rendering (fields name, pid, memory_usage, cpu_usage, children). */
export function renderStats(s: Usage & { name: string; children: Usage[] }): string {
  const usage = (u: Usage, pad: string) =>
    `pid: ${u.pid}\n${pad}memory_usage: ${u.memory_usage}\n${pad}cpu_usage: ${yamlFloat(u.cpu_usage)}`;
  const children = s.children.length
    ? `\n${s.children.map((c) => `  - ${usage(c, "    ")}`).join("\n")}`
    : " []";
  return `---\nname: ${yamlScalar(s.name)}\n${usage(s, "")}\nchildren:${children}\n`;
}

/** What the helpers read of a command's context. */
type Ctx = { args: Record<string, unknown>; data?: unknown };
/** Prints a result: JSON with --json, else zinit's text. */
type Out = (value: unknown, text: string) => void;

/** Options every zinit command takes after its name (before it, the root's -s, -d and --json). */
const JSON_ARG = { json: { type: "boolean", description: "print the result as JSON" } } as const;
const SERVICE_ARG = {
  service: {
    type: "positional",
    required: true,
    description: "service name (/etc/zinit/SERVICE.yaml)",
  },
} as const;

/** The socket (-s before the command) and --json (before or after it). */
function options(ctx: Ctx): { socket?: string; json: boolean } {
  const up = runData(ctx.data).up;
  const socket = up.socket ?? ctx.args.socket;
  return {
    socket: typeof socket === "string" ? socket : undefined,
    json: ctx.args.json === true || up.json === true,
  };
}

/**
 * Connects, runs fn, closes; an error (no daemon, a refusal) is one line on
 * stderr, exit 1. A refusal is worded as zinit 0.2.14's CLI prints it
 * (`service name "x" unknown`), from the daemon's code and the service its
 * data names, whichever protocol the daemon speaks.
 */
async function withDaemon(
  ctx: Ctx,
  cmd: string,
  fn: (d: Daemon, out: Out, json: boolean, path: string) => Promise<void>,
): Promise<number> {
  const { socket, json } = options(ctx);
  const path = socketPath(socket);
  let daemon: Daemon | null = null;
  try {
    daemon = await openDaemon(path);
    const out: Out = (v, text) => process.stdout.write(json ? `${JSON.stringify(v)}\n` : text);
    await fn(daemon, out, json, path);
    return 0;
  } catch (e) {
    process.stderr.write(`${legacyText(e, cmd)}\n`);
    return 1;
  } finally {
    daemon?.close();
  }
}

/** A command that calls one method with the service name (start, stop, …): silent, `null` with --json. */
function serviceCall(name: string, description: string): Command {
  return {
    meta: { name, description, usageExit: 1 },
    args: { ...SERVICE_ARG, ...JSON_ARG },
    run: (ctx) =>
      withDaemon(ctx, name, async (d, out, json) => {
        await d.call(`service_${name}`, [ctx.args.service]);
        if (json) out(null, "");
      }),
  };
}

/** A command that calls one system method (shutdown, reboot). */
function systemCall(name: string, description: string): Command {
  return {
    meta: { name, description, usageExit: 1 },
    args: JSON_ARG,
    run: (ctx) =>
      withDaemon(ctx, name, async (d) => {
        await d.call(`system_${name}`);
      }),
  };
}

/** `list`, also what `zinit` alone runs (zinit's default command). */
export function runList(ctx: Ctx): Promise<number> {
  return withDaemon(ctx, "list", async (d, out) => {
    const r = (await d.call("service_list")) as Record<string, string>;
    out(r, yamlMap(r));
  });
}

const list: CommandDef<typeof JSON_ARG> = {
  meta: { name: "list", description: "services and their states", usageExit: 1 },
  args: JSON_ARG,
  run: (ctx) => runList(ctx),
};

const status: CommandDef<typeof SERVICE_ARG & typeof JSON_ARG> = {
  meta: {
    name: "status",
    description: "pid, state, target and dependencies of a service",
    usageExit: 1,
  },
  args: { ...SERVICE_ARG, ...JSON_ARG },
  run: (ctx) =>
    withDaemon(ctx, "status", async (d, out) => {
      const r = (await d.call("service_status", [ctx.args.service])) as Parameters<
        typeof renderStatus
      >[0];
      out(r, renderStatus(r));
    }),
};

const stats: CommandDef<typeof SERVICE_ARG & typeof JSON_ARG> = {
  meta: {
    name: "stats",
    description: "memory (RSS) and CPU use of a running service and of its other processes",
    usageExit: 1,
  },
  args: { ...SERVICE_ARG, ...JSON_ARG },
  run: (ctx) =>
    withDaemon(ctx, "stats", async (d, out) => {
      const r = (await d.call("service_stats", [ctx.args.service])) as Parameters<
        typeof renderStats
      >[0];
      out(r, renderStats(r));
    }),
};

const KILL_ARGS = {
  ...SERVICE_ARG,
  signal: { type: "positional", required: false, default: "SIGTERM", description: "signal name" },
  ...JSON_ARG,
} as const;

const kill: CommandDef<typeof KILL_ARGS> = {
  meta: {
    name: "kill",
    description: "send a signal (default SIGTERM); the service stays up",
    usageExit: 1,
  },
  args: KILL_ARGS,
  run: (ctx) =>
    withDaemon(ctx, "kill", async (d) => {
      await d.call("service_kill", [ctx.args.service, ctx.args.signal]);
    }),
};

/**
 * `restart`: hero-init's service_restart (stop waits for the exit); on a
 * zinit without it, zinit's own way: stop, poll the status for 20 s, then
 * SIGKILL, then start.
 */
async function restartOn(d: Daemon, name: string): Promise<void> {
  if (d.jsonRpc()) {
    try {
      await d.call("service_restart", [name]);
      return;
    } catch (e) {
      const notFound = isHeroError(e, "control.method-not-found");
      if (!notFound && !isHeroError(e, "control.legacy-error")) throw e;
    }
  }
  await d.call("service_stop", [name]);
  for (let i = 0; i < 20; i++) {
    const s = (await d.call("service_status", [name])) as { pid: number; target: string };
    if (s.pid === 0 && s.target === "Down") return void (await d.call("service_start", [name]));
    await Bun.sleep(1000);
  }
  await d.call("service_kill", [name, "SIGKILL"]);
  await d.call("service_start", [name]);
}

const restart: Command = {
  meta: { name: "restart", description: "stop (waiting for the exit), then start", usageExit: 1 },
  args: { ...SERVICE_ARG, ...JSON_ARG },
  run: (ctx) =>
    withDaemon(ctx, "restart", async (d, out, json) => {
      await restartOn(d, ctx.args.service as string);
      if (json) out(null, "");
    }),
};

const LOG_ARGS = {
  snapshot: { type: "boolean", alias: "s", description: "print the logs so far, do not follow" },
  filter: { type: "positional", required: false, description: "only this service's lines" },
  ...JSON_ARG,
} as const;

const log: CommandDef<typeof LOG_ARGS> = {
  meta: {
    name: "log",
    description: "show the logs of all services or of FILTER, then follow them",
    usageExit: 1,
  },
  args: LOG_ARGS,
  run: (ctx) =>
    withDaemon(ctx, "log", async (d) => {
      const filter = ctx.args.filter === undefined ? undefined : String(ctx.args.filter);
      await d.logs(filter, ctx.args.snapshot !== true, (l) => process.stdout.write(`${l}\n`));
    }),
};

const PROXY_ARGS = {
  address: {
    type: "string",
    alias: "a",
    default: "127.0.0.1:8080",
    valueHint: "host:port",
    description: "address of the HTTP/RPC server",
  },
} as const;

const proxy: CommandDef<typeof PROXY_ARGS> = {
  meta: {
    name: "proxy",
    description:
      "ask the daemon for an HTTP/RPC server until Ctrl+C (hero-init refuses: see docs/services.md)",
    usageExit: 1,
  },
  args: PROXY_ARGS,
  run: (ctx) =>
    withDaemon(ctx, "proxy", async (d, _out, _json, path) => {
      const address = ctx.args.address;
      process.stdout.write(
        `Starting HTTP/RPC server on ${address}\nConnecting to Zinit daemon at ${path}\n`,
      );
      process.stdout.write(
        `${await d.call("system_start_http_server", [address])}\nPress Ctrl+C to stop\n`,
      );
      await new Promise((r) => process.once("SIGINT", r));
      await d.call("system_stop_http_server");
      process.stdout.write("HTTP/RPC server stopped\n");
    }),
};

/** The zinit commands, by name (zinit's order). */
export const zinitCommands: Record<string, Command> = {
  list,
  status,
  start: serviceCall("start", "set target up and start"),
  stop: serviceCall("stop", "set target down and stop (waits until the process tree is gone)"),
  restart,
  monitor: serviceCall("monitor", "load /etc/zinit/SERVICE.yaml and start watching it"),
  forget: serviceCall("forget", "stop watching a stopped service"),
  kill,
  stats,
  log,
  shutdown: systemCall("shutdown", "stop all services and power off"),
  reboot: systemCall("reboot", "stop all services and reboot"),
  proxy,
};
