/**
 * `hero-init agent …`: the host's client of a VM's guest agent
 * (docs/agent.md). Exec with the remote exit code as ours, cp both ways
 * keeping mode and mtime, shutdown, status and the job's exit code.
 *
 * Exit codes: exec and wait-exit return the remote code; a usage error is 2;
 * an agent or transport error is 255 (as ssh does), so a remote 1 stays 1.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { AgentClient, AgentClientError } from "../host/agent-client.ts";
import { DEFAULT_AGENT_PORT, type ExecRequest } from "../lib/agent-protocol.ts";

const USAGE = `usage: hero-init agent [TARGET] [TOKEN] COMMAND [--json]

target (one of):
  --addr http://[ADDR]:PORT     the agent over HTTP (mycelium or loopback; port defaults to ${DEFAULT_AGENT_PORT})
  --vsock SOCKET:PORT           Cloud Hypervisor hybrid vsock (the VM's vsock unix socket, agent port)
  --vsock-cid CID:PORT          AF_VSOCK from a machine with a vsock device (the VM's CID, agent port)
  --deployment DIR              DIR/deployment.json of deploy_vm (mycelium address and token)
  (or env HERO_AGENT_ADDR)
token (one of): --token-file F | --token T | env HERO_AGENT_TOKEN | --deployment DIR

commands:
  exec [--timeout S] [--cwd DIR] [--env K=V]... [--stdin] -- ARGV...
                                run a command; its stdout/stderr stream here; exits with its code
  cp LOCAL vm:/PATH [--mkdir]   upload (keeps mode and mtime; atomic on the VM)
  cp vm:/PATH LOCAL             download (keeps mode and mtime)
  stat vm:/PATH                 type, size, mode, mtime, owner (of the link itself for a symlink)
  shutdown [--reboot]           graceful poweroff (or reboot) of the VM
  status                        services and versions
  wait-exit [--timeout S]       wait for the job's exit; exits with the job's code (124 after the timeout)

exit status: the remote code for exec/wait-exit, 2 for usage errors, 255 for agent/transport errors.
`;

class UsageError extends Error {}

interface Parsed {
  url?: string;
  vsock?: { socket: string; port: number } | { cid: number; port: number };
  token?: string;
  json: boolean;
  cmd: string;
  rest: string[];
  /** Arguments after `--` (exec's argv). */
  argv: string[];
}

/** Pure: normalises an --addr value to a base URL (scheme and default port added). */
export function agentUrl(addr: string): string {
  let a = addr.trim();
  if (!/^https?:\/\//.test(a)) {
    // a bare IPv6 address gets brackets
    if (!a.startsWith("[") && (a.match(/:/g) ?? []).length > 1) a = `[${a}]`;
    a = `http://${a}`;
  }
  let u: URL;
  try {
    u = new URL(a);
  } catch {
    throw new UsageError(`--addr: not an address or URL: "${addr}"`);
  }
  if (!u.port) u.port = String(DEFAULT_AGENT_PORT);
  return `${u.protocol}//${u.host}`;
}

/** Pure: parses `SOCKET:PORT`. */
export function parseVsockArg(s: string): { socket: string; port: number } {
  const i = s.lastIndexOf(":");
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 0xffffffff)
    throw new UsageError(`--vsock wants SOCKET:PORT (got "${s}")`);
  return { socket: s.slice(0, i), port };
}

function parse(args: string[], env: Record<string, string | undefined>): Parsed {
  const out: Parsed = { json: false, cmd: "", rest: [], argv: [] };
  const value = (i: number, flag: string): string => {
    const v = args[i];
    if (v === undefined) throw new UsageError(`${flag} needs a value`);
    return v;
  };
  let deployment: { agentToken?: string; myceliumAddress?: string | null } | null = null;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === "--") {
      out.argv = args.slice(i + 1);
      break;
    }
    if (a === "--addr") out.url = agentUrl(value(++i, a));
    else if (a === "--vsock") out.vsock = parseVsockArg(value(++i, a));
    else if (a === "--vsock-cid") {
      const v = value(++i, a);
      const m = /^(\d+):(\d+)$/.exec(v);
      if (!m) throw new UsageError(`--vsock-cid wants CID:PORT (got "${v}")`);
      out.vsock = { cid: Number(m[1]), port: Number(m[2]) };
    } else if (a === "--token") out.token = value(++i, a);
    else if (a === "--token-file") {
      const f = value(++i, a);
      try {
        out.token = readFileSync(f, "utf8").trim();
      } catch (e) {
        throw new UsageError(`--token-file ${f}: ${(e as Error).message}`);
      }
    } else if (a === "--deployment") {
      const f = join(value(++i, a), "deployment.json");
      try {
        deployment = JSON.parse(readFileSync(f, "utf8"));
      } catch (e) {
        throw new UsageError(`--deployment: cannot read ${f}: ${(e as Error).message}`);
      }
    } else if (a === "--json") out.json = true;
    else if (!out.cmd && !a.startsWith("-")) out.cmd = a;
    else out.rest.push(a);
  }
  if (deployment) {
    out.token ??= deployment.agentToken;
    if (!out.url && !out.vsock) {
      if (!deployment.myceliumAddress)
        throw new UsageError(
          "--deployment: the deployment has no mycelium address; use --addr or --vsock",
        );
      out.url = agentUrl(deployment.myceliumAddress);
    }
  }
  out.token ??= env.HERO_AGENT_TOKEN?.trim() || undefined;
  if (!out.url && !out.vsock && env.HERO_AGENT_ADDR) out.url = agentUrl(env.HERO_AGENT_ADDR);
  return out;
}

/** Takes `--flag VALUE` out of rest; returns the values. */
function takeOpt(rest: string[], flag: string): string[] {
  const vals: string[] = [];
  for (let i = 0; i < rest.length; ) {
    if (rest[i] === flag) {
      const v = rest[i + 1];
      if (v === undefined) throw new UsageError(`${flag} needs a value`);
      vals.push(v);
      rest.splice(i, 2);
    } else i++;
  }
  return vals;
}

function takeFlag(rest: string[], flag: string): boolean {
  const i = rest.indexOf(flag);
  if (i < 0) return false;
  rest.splice(i, 1);
  return true;
}

function seconds(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`${flag} wants seconds (got "${s}")`);
  return n;
}

function noExtra(p: Parsed): void {
  if (p.rest.length > 0) throw new UsageError(`unexpected argument ${p.rest[0]}`);
}

const VM = "vm:";

async function writeOut(stream: NodeJS.WriteStream, b: Uint8Array): Promise<void> {
  if (!stream.write(b)) await new Promise<void>((r) => stream.once("drain", () => r()));
}

async function run(p: Parsed, client: AgentClient): Promise<number> {
  const print = (x: unknown, text: string) =>
    process.stdout.write(p.json ? `${JSON.stringify(x)}\n` : text);
  switch (p.cmd) {
    case "exec": {
      const timeout = takeOpt(p.rest, "--timeout");
      const cwd = takeOpt(p.rest, "--cwd");
      const envs = takeOpt(p.rest, "--env");
      const stdin = takeFlag(p.rest, "--stdin");
      noExtra(p);
      if (p.argv.length === 0) throw new UsageError("exec: give the command after --");
      const req: ExecRequest = { argv: p.argv };
      if (timeout.length)
        req.timeout_ms = Math.max(
          1,
          Math.round(seconds(timeout.at(-1) as string, "--timeout") * 1000),
        );
      if (cwd.length) req.cwd = cwd.at(-1);
      if (envs.length) {
        req.env = {};
        for (const kv of envs) {
          const i = kv.indexOf("=");
          if (i <= 0) throw new UsageError(`--env wants K=V (got "${kv}")`);
          req.env[kv.slice(0, i)] = kv.slice(i + 1);
        }
      }
      if (stdin)
        req.stdin = Buffer.from(await new Response(Bun.stdin.stream()).arrayBuffer()).toString(
          "base64",
        );
      if (p.json) {
        const out: Uint8Array[] = [];
        const err: Uint8Array[] = [];
        const exit = await client.exec(req, {
          stdout: (b) => void out.push(b),
          stderr: (b) => void err.push(b),
        });
        print(
          {
            ...exit,
            stdout: Buffer.concat(out).toString("utf8"),
            stderr: Buffer.concat(err).toString("utf8"),
          },
          "",
        );
        return exit.code;
      }
      const exit = await client.exec(req, {
        stdout: (b) => writeOut(process.stdout, b),
        stderr: (b) => writeOut(process.stderr, b),
      });
      if (exit.error) process.stderr.write(`hero-init agent: ${exit.error}\n`);
      if (exit.timed_out)
        process.stderr.write("hero-init agent: the command timed out and was stopped\n");
      return exit.code;
    }
    case "cp": {
      const mkdir = takeFlag(p.rest, "--mkdir");
      const [src, dst, ...more] = p.rest;
      if (!src || !dst || more.length)
        throw new UsageError("cp wants LOCAL vm:/PATH or vm:/PATH LOCAL");
      if (src.startsWith(VM) === dst.startsWith(VM))
        throw new UsageError("cp: exactly one side must be vm:/PATH");
      if (dst.startsWith(VM)) {
        const r = await client.copyTo(src, dst.slice(VM.length), { mkdir });
        print(r, `${src} -> vm:${r.path} (${r.size} bytes, mode ${r.mode})\n`);
      } else {
        const r = await client.copyFrom(src.slice(VM.length), dst);
        print({ path: dst, ...r }, `${src} -> ${dst} (${r.size} bytes, mode ${r.mode})\n`);
      }
      return 0;
    }
    case "stat": {
      const [path, ...more] = p.rest;
      if (!path || more.length) throw new UsageError("stat wants vm:/PATH");
      const s = await client.stat(path.startsWith(VM) ? path.slice(VM.length) : path);
      print(
        s,
        `${s.type} ${s.mode} ${s.uid}:${s.gid} ${s.size} bytes mtime ${new Date(s.mtime * 1000).toISOString()}${s.target !== undefined ? ` -> ${s.target}` : ""}\n`,
      );
      return 0;
    }
    case "shutdown": {
      const reboot = takeFlag(p.rest, "--reboot");
      noExtra(p);
      const kind = reboot ? "reboot" : "poweroff";
      await client.shutdown(kind);
      print({ ok: true, kind }, `${kind} requested\n`);
      return 0;
    }
    case "status": {
      noExtra(p);
      const s = await client.status();
      print(s, `${JSON.stringify(s, null, 2)}\n`);
      return 0;
    }
    case "wait-exit": {
      const t = takeOpt(p.rest, "--timeout");
      noExtra(p);
      const timeoutMs = t.length
        ? seconds(t.at(-1) as string, "--timeout") * 1000
        : Number.POSITIVE_INFINITY;
      const deadline = Date.now() + timeoutMs;
      // Long-poll in slices (the agent caps one poll), until the deadline.
      for (;;) {
        const left = deadline - Date.now();
        const r = await client.waitExit(Math.max(0, Math.min(left, 60_000)));
        if (r) {
          print(r, `job exited with code ${r.code}${r.message ? `: ${r.message}` : ""}\n`);
          return r.code;
        }
        if (Date.now() >= deadline) {
          print({ timeout: true }, "the job has not exited yet\n");
          return 124;
        }
      }
    }
    default:
      throw new UsageError(p.cmd ? `unknown agent command "${p.cmd}"` : "no agent command given");
  }
}

/** Runs `hero-init agent …`; returns the exit code. */
export async function runAgent(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  if (args.length === 0 || args.includes("-h") || args.includes("--help")) {
    (args.length === 0 ? process.stderr : process.stdout).write(USAGE);
    return args.length === 0 ? 2 : 0;
  }
  let client: AgentClient | null = null;
  try {
    const p = parse(args, env);
    if (!p.cmd) throw new UsageError("no agent command given");
    if (!p.url && !p.vsock)
      throw new UsageError("say where the agent is: --addr, --vsock or --deployment");
    if (p.url && p.vsock) throw new UsageError("--addr and --vsock are exclusive");
    if (!p.token) throw new UsageError("no token: --token-file, --token or HERO_AGENT_TOKEN");
    client = new AgentClient({ url: p.url, vsock: p.vsock, token: p.token });
    return await run(p, client);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`hero-init agent: ${e.message}\n${USAGE}`);
      return 2;
    }
    const msg = e instanceof AgentClientError ? e.message : ((e as Error)?.message ?? String(e));
    process.stderr.write(`hero-init agent: ${msg}\n`);
    return 255;
  } finally {
    client?.close();
  }
}
