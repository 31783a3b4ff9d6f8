/**
 * The zinit-compatible CLI: `zinit [-s SOCKET] <command>` (or `hero-init
 * <command>`). Same commands, output formats and exit codes as zinit (list
 * and status print YAML; errors go to stderr with exit 1), plus `--json`.
 */
import { ClientError, connect, socketPath } from "../guest/control/client.ts";

const USAGE = `usage: zinit [-s SOCKET] [--json] <command>

commands:
  list                 services and their states
  status SERVICE       pid, state, target and dependencies of a service
  start SERVICE        set target up and start
  stop SERVICE         set target down and stop (waits until the process tree is gone)
  restart SERVICE      stop, then start
  monitor SERVICE      load /etc/zinit/SERVICE.yaml and start watching it
  forget SERVICE       stop watching a stopped service
  kill SERVICE [SIG]   send a signal (default SIGTERM); the service stays up
  log [-s] [FILTER]    show logs (-s: snapshot, no follow) for all services or FILTER
  shutdown             stop all services and power off
  reboot               stop all services and reboot
`;

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

/** Runs the zinit CLI; returns the exit code. */
export async function runZinit(args: string[]): Promise<number> {
  let sock: string | undefined;
  let json = false;
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    // Global options come before the command; after it, flags belong to the command (log -s).
    if (a === "--json") json = true;
    else if (rest.length > 0) rest.push(a);
    else if (a === "-s" || a === "--socket") sock = args[++i];
    else if (a === "-h" || a === "--help" || a === "help") {
      process.stdout.write(USAGE);
      return 0;
    } else rest.push(a);
  }
  const [cmd, ...cargs] = rest;
  if (!cmd) {
    process.stderr.write(USAGE);
    return 1;
  }
  const need = (n: number) => {
    if (cargs.length < n) throw new ClientError(-32602, `${cmd}: missing service name\n${USAGE}`);
    return cargs[0] as string;
  };
  let client: Awaited<ReturnType<typeof connect>> | null = null;
  try {
    if (cmd === "log") return await followLog(socketPath(sock), cargs);
    client = await connect(socketPath(sock));
    const out = (v: unknown, text: string) =>
      process.stdout.write(json ? `${JSON.stringify(v)}\n` : text);
    switch (cmd) {
      case "list": {
        const r = (await client.call("service_list")) as Record<string, string>;
        out(r, yamlMap(r));
        return 0;
      }
      case "status": {
        const r = (await client.call("service_status", [need(1)])) as Parameters<
          typeof renderStatus
        >[0];
        out(r, renderStatus(r));
        return 0;
      }
      case "start":
      case "stop":
      case "restart":
      case "monitor":
      case "forget":
        await client.call(`service_${cmd}`, [need(1)]);
        if (json) out(null, "");
        return 0;
      case "kill":
        await client.call("service_kill", [need(1), cargs[1] ?? "SIGTERM"]);
        return 0;
      case "shutdown":
      case "reboot":
        await client.call(`system_${cmd}`);
        return 0;
      default:
        process.stderr.write(`unknown command '${cmd}'\n${USAGE}`);
        return 1;
    }
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  } finally {
    client?.close();
  }
}

async function followLog(path: string, args: string[]): Promise<number> {
  const snapshot = args.includes("-s");
  const filter = args.find((a) => a !== "-s");
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
