/**
 * The zinit-compatible commands: `zinit [-s SOCKET] <command>` (or
 * `hero-init <command>`), each a citty command (cli/index.ts puts them
 * under both roots). Same commands, output formats and exit codes as zinit
 * (list and status print YAML; errors go to stderr with exit 1, usage
 * errors too), plus `--json` before or after the command.
 */
import type { CommandDef } from "citty";
import { connect, socketPath } from "../guest/control/client.ts";
import { type Command, runData } from "./run.ts";

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

type Client = Awaited<ReturnType<typeof connect>>;
/** What the helpers read of a command's context. */
type Ctx = { args: Record<string, unknown>; data?: unknown };
/** Prints a result: JSON with --json, else zinit's text. */
type Out = (value: unknown, text: string) => void;

/** Options every zinit command takes after its name (before it, the root's -s and --json). */
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
  return {
    socket: typeof up.socket === "string" ? up.socket : undefined,
    json: ctx.args.json === true || up.json === true,
  };
}

/** Connects, runs fn, closes; an error (no daemon, a refusal) is one line on stderr, exit 1. */
async function withClient(
  ctx: Ctx,
  fn: (client: Client, out: Out, json: boolean) => Promise<void>,
): Promise<number> {
  const { socket, json } = options(ctx);
  let client: Client | null = null;
  try {
    client = await connect(socketPath(socket));
    const out: Out = (v, text) => process.stdout.write(json ? `${JSON.stringify(v)}\n` : text);
    await fn(client, out, json);
    return 0;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  } finally {
    client?.close();
  }
}

/** A command that calls one method with the service name (start, stop, …): silent, `null` with --json. */
function serviceCall(name: string, description: string): Command {
  return {
    meta: { name, description, usageExit: 1 },
    args: { ...SERVICE_ARG, ...JSON_ARG },
    run: (ctx) =>
      withClient(ctx, async (c, out, json) => {
        await c.call(`service_${name}`, [ctx.args.service]);
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
      withClient(ctx, async (c) => {
        await c.call(`system_${name}`);
      }),
  };
}

const list: CommandDef<typeof JSON_ARG> = {
  meta: { name: "list", description: "services and their states", usageExit: 1 },
  args: JSON_ARG,
  run: (ctx) =>
    withClient(ctx, async (c, out) => {
      const r = (await c.call("service_list")) as Record<string, string>;
      out(r, yamlMap(r));
    }),
};

const status: CommandDef<typeof SERVICE_ARG & typeof JSON_ARG> = {
  meta: {
    name: "status",
    description: "pid, state, target and dependencies of a service",
    usageExit: 1,
  },
  args: { ...SERVICE_ARG, ...JSON_ARG },
  run: (ctx) =>
    withClient(ctx, async (c, out) => {
      const r = (await c.call("service_status", [ctx.args.service])) as Parameters<
        typeof renderStatus
      >[0];
      out(r, renderStatus(r));
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
    withClient(ctx, async (c) => {
      await c.call("service_kill", [ctx.args.service, ctx.args.signal]);
    }),
};

const LOG_ARGS = {
  snapshot: { type: "boolean", alias: "s", description: "print the logs so far, do not follow" },
  filter: { type: "positional", required: false, description: "only lines containing FILTER" },
  ...JSON_ARG,
} as const;

const log: CommandDef<typeof LOG_ARGS> = {
  meta: {
    name: "log",
    description: "show logs for all services or FILTER, then follow them",
    usageExit: 1,
  },
  args: LOG_ARGS,
  async run(ctx) {
    try {
      return await followLog(socketPath(options(ctx).socket), ctx.args.snapshot, ctx.args.filter);
    } catch (e) {
      process.stderr.write(`${(e as Error).message}\n`);
      return 1;
    }
  },
};

/** The zinit commands, by name (zinit's order). */
export const zinitCommands: Record<string, Command> = {
  list,
  status,
  start: serviceCall("start", "set target up and start"),
  stop: serviceCall("stop", "set target down and stop (waits until the process tree is gone)"),
  restart: serviceCall("restart", "stop, then start"),
  monitor: serviceCall("monitor", "load /etc/zinit/SERVICE.yaml and start watching it"),
  forget: serviceCall("forget", "stop watching a stopped service"),
  kill,
  log,
  shutdown: systemCall("shutdown", "stop all services and power off"),
  reboot: systemCall("reboot", "stop all services and reboot"),
};

async function followLog(path: string, snapshot = false, filter?: string): Promise<number> {
  const matches = (l: string) => !filter || l.includes(filter);
  const client = await connect(path, (p) => {
    const line = (p as { result?: string })?.result;
    if (typeof line === "string" && matches(line)) process.stdout.write(`${line}\n`);
  });
  const lines = (await client.call("stream_currentLogs")) as string[];
  for (const l of lines) if (matches(l)) process.stdout.write(`${l}\n`);
  if (snapshot) {
    client.close();
    return 0;
  }
  await client.call("stream_subscribeLogs");
  await new Promise(() => {}); // follow until interrupted
  return 0;
}
