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
import { defineCommand } from "citty";
import { AgentClient } from "../host/agent-client.ts";
import { DEFAULT_AGENT_PORT, type ExecRequest } from "../lib/agent-protocol.ts";
import { isHeroError } from "../lib/errors.ts";
import { type Command, optionValues, runData, runTree, usageError } from "./run.ts";

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
    throw usageError(`--addr: not an address or URL: "${addr}"`);
  }
  if (!u.port) u.port = String(DEFAULT_AGENT_PORT);
  return `${u.protocol}//${u.host}`;
}

/** Pure: parses `SOCKET:PORT`. */
export function parseVsockArg(s: string): { socket: string; port: number } {
  const i = s.lastIndexOf(":");
  const port = Number(s.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port < 1 || port > 0xffffffff)
    throw usageError(`--vsock wants SOCKET:PORT (got "${s}")`);
  return { socket: s.slice(0, i), port };
}

function seconds(s: string, flag: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) throw usageError(`${flag} wants seconds (got "${s}")`);
  return n;
}

/** Where the agent is and the token, from options before or after the command. */
const TARGET_ARGS = {
  addr: {
    type: "string",
    valueHint: "url",
    description: `the agent over HTTP: http://[ADDR]:PORT (mycelium or loopback; port defaults to ${DEFAULT_AGENT_PORT}; or env HERO_AGENT_ADDR)`,
  },
  vsock: {
    type: "string",
    valueHint: "socket:port",
    description: "Cloud Hypervisor hybrid vsock (the VM's vsock unix socket, agent port)",
  },
  "vsock-cid": {
    type: "string",
    valueHint: "cid:port",
    description: "AF_VSOCK from a machine with a vsock device (the VM's CID, agent port)",
  },
  deployment: {
    type: "string",
    valueHint: "dir",
    description: "DIR/deployment.json of deploy_vm (mycelium address and token)",
  },
  token: { type: "string", description: "the agent token (or env HERO_AGENT_TOKEN)" },
  "token-file": { type: "string", valueHint: "file", description: "a file holding the token" },
  json: { type: "boolean", description: "JSON output" },
} as const;

interface Target {
  url?: string;
  vsock?: { socket: string; port: number } | { cid: number; port: number };
  token?: string;
}

/** Reads the target options (given before or after the command) into where and with what token. */
function target(o: Record<string, unknown>, env: Record<string, string | undefined>): Target {
  const t: Target = {};
  const str = (k: keyof typeof TARGET_ARGS) => (typeof o[k] === "string" ? o[k] : undefined);
  const addr = str("addr");
  if (addr !== undefined) t.url = agentUrl(addr);
  const vsock = str("vsock");
  if (vsock !== undefined) t.vsock = parseVsockArg(vsock);
  const cid = str("vsock-cid");
  if (cid !== undefined) {
    const m = /^(\d+):(\d+)$/.exec(cid);
    if (!m) throw usageError(`--vsock-cid wants CID:PORT (got "${cid}")`);
    t.vsock = { cid: Number(m[1]), port: Number(m[2]) };
  }
  t.token = str("token");
  const tokenFile = str("token-file");
  if (tokenFile !== undefined) {
    try {
      t.token = readFileSync(tokenFile, "utf8").trim();
    } catch (e) {
      throw usageError(`--token-file ${tokenFile}: ${(e as Error).message}`);
    }
  }
  const dir = str("deployment");
  if (dir !== undefined) fromDeployment(t, join(dir, "deployment.json"));
  t.token ??= env.HERO_AGENT_TOKEN?.trim() || undefined;
  if (!t.url && !t.vsock && env.HERO_AGENT_ADDR) t.url = agentUrl(env.HERO_AGENT_ADDR);
  if (!t.url && !t.vsock)
    throw usageError("say where the agent is: --addr, --vsock or --deployment");
  if (t.url && t.vsock) throw usageError("--addr and --vsock are exclusive");
  if (!t.token) throw usageError("no token: --token-file, --token or HERO_AGENT_TOKEN");
  return t;
}

/** Fills the token and (unless given) the address from deploy_vm's deployment.json. */
function fromDeployment(t: Target, file: string): void {
  let d: { agentToken?: string; myceliumAddress?: string | null };
  try {
    d = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw usageError(`--deployment: cannot read ${file}: ${(e as Error).message}`);
  }
  t.token ??= d.agentToken;
  if (t.url || t.vsock) return;
  if (!d.myceliumAddress)
    throw usageError("--deployment: the deployment has no mycelium address; use --addr or --vsock");
  t.url = agentUrl(d.myceliumAddress);
}

/** Prints a result: JSON with --json, else the text. */
type Print = (value: unknown, text: string) => void;
/** What the helpers read of a command's context. */
type Ctx = { args: Record<string, unknown>; data?: unknown };

/**
 * Connects to the agent the options name and runs fn; an agent or
 * transport error is "hero-init agent: message", exit 255 (as ssh does).
 */
async function withAgent(
  ctx: Ctx,
  fn: (client: AgentClient, print: Print, json: boolean) => Promise<number>,
): Promise<number> {
  const { up, env } = runData(ctx.data);
  const o: Record<string, unknown> = {};
  for (const k of Object.keys(TARGET_ARGS)) o[k] = ctx.args[k] ?? up[k];
  const t = target(o, env);
  const json = o.json === true;
  const print: Print = (x, text) => process.stdout.write(json ? `${JSON.stringify(x)}\n` : text);
  let client: AgentClient | null = null;
  try {
    client = new AgentClient({ url: t.url, vsock: t.vsock, token: t.token as string });
    return await fn(client, print, json);
  } catch (e) {
    if (isHeroError(e, "input.usage")) throw e;
    const msg = isHeroError(e, "agent") ? e.message : ((e as Error)?.message ?? String(e));
    process.stderr.write(`hero-init agent: ${msg}\n`);
    return 255;
  } finally {
    client?.close();
  }
}

const VM = "vm:";

async function writeOut(stream: NodeJS.WriteStream, b: Uint8Array): Promise<void> {
  if (!stream.write(b)) await new Promise<void>((r) => stream.once("drain", () => r()));
}

const EXEC_ARGS = {
  timeout: {
    type: "string",
    valueHint: "seconds",
    description: "stop the command after S seconds",
  },
  cwd: { type: "string", valueHint: "dir", description: "working directory" },
  env: { type: "string", valueHint: "K=V", description: "an environment variable (repeatable)" },
  stdin: { type: "boolean", description: "send this stdin to the command" },
  ...TARGET_ARGS,
} as const;

/** Pure: the exec request of exec's options and argv (the words after --). */
export function execRequest(
  o: { timeout?: string; cwd?: string; env: string[] },
  argv: string[],
): ExecRequest {
  if (argv.length === 0) throw usageError("exec: give the command after --");
  const req: ExecRequest = { argv };
  if (o.timeout !== undefined)
    req.timeout_ms = Math.max(1, Math.round(seconds(o.timeout, "--timeout") * 1000));
  if (o.cwd !== undefined) req.cwd = o.cwd;
  if (o.env.length) {
    req.env = {};
    for (const kv of o.env) {
      const i = kv.indexOf("=");
      if (i <= 0) throw usageError(`--env wants K=V (got "${kv}")`);
      req.env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  return req;
}

const exec = defineCommand({
  meta: {
    name: "exec",
    description:
      "run a command (ARGV after --); its stdout/stderr stream here; exits with its code",
  },
  args: EXEC_ARGS,
  run: (ctx) =>
    withAgent(ctx, async (client, print, json) => {
      const dashes = ctx.rawArgs.indexOf("--");
      const req = execRequest(
        { ...ctx.args, env: optionValues(ctx.rawArgs, EXEC_ARGS, "env") },
        dashes < 0 ? [] : ctx.rawArgs.slice(dashes + 1),
      );
      if (ctx.args.stdin)
        req.stdin = Buffer.from(await new Response(Bun.stdin.stream()).arrayBuffer()).toString(
          "base64",
        );
      if (json) {
        const out: Uint8Array[] = [];
        const err: Uint8Array[] = [];
        const exit = await client.exec(req, {
          stdout: (b) => void out.push(b),
          stderr: (b) => void err.push(b),
        });
        const text = (parts: Uint8Array[]) => Buffer.concat(parts).toString("utf8");
        print({ ...exit, stdout: text(out), stderr: text(err) }, "");
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
    }),
});

const cp = defineCommand({
  meta: {
    name: "cp",
    description:
      "LOCAL vm:/PATH uploads (keeps mode and mtime; atomic on the VM); vm:/PATH LOCAL downloads",
  },
  args: {
    src: { type: "positional", required: true, description: "LOCAL or vm:/PATH" },
    dst: { type: "positional", required: true, description: "vm:/PATH or LOCAL" },
    mkdir: { type: "boolean", description: "upload: make the missing directories" },
    ...TARGET_ARGS,
  },
  run: (ctx) =>
    withAgent(ctx, async (client, print) => {
      const { src, dst, mkdir } = ctx.args;
      if (src.startsWith(VM) === dst.startsWith(VM))
        throw usageError("cp: exactly one side must be vm:/PATH");
      if (dst.startsWith(VM)) {
        const r = await client.copyTo(src, dst.slice(VM.length), { mkdir: mkdir === true });
        print(r, `${src} -> vm:${r.path} (${r.size} bytes, mode ${r.mode})\n`);
      } else {
        const r = await client.copyFrom(src.slice(VM.length), dst);
        print({ path: dst, ...r }, `${src} -> ${dst} (${r.size} bytes, mode ${r.mode})\n`);
      }
      return 0;
    }),
});

const stat = defineCommand({
  meta: {
    name: "stat",
    description: "type, size, mode, mtime, owner (of the link itself for a symlink)",
  },
  args: { path: { type: "positional", required: true, description: "vm:/PATH" }, ...TARGET_ARGS },
  run: (ctx) =>
    withAgent(ctx, async (client, print) => {
      const path = ctx.args.path;
      const s = await client.stat(path.startsWith(VM) ? path.slice(VM.length) : path);
      print(
        s,
        `${s.type} ${s.mode} ${s.uid}:${s.gid} ${s.size} bytes mtime ${new Date(s.mtime * 1000).toISOString()}${s.target !== undefined ? ` -> ${s.target}` : ""}\n`,
      );
      return 0;
    }),
});

const shutdown = defineCommand({
  meta: { name: "shutdown", description: "graceful poweroff (or reboot) of the VM" },
  args: { reboot: { type: "boolean", description: "reboot instead" }, ...TARGET_ARGS },
  run: (ctx) =>
    withAgent(ctx, async (client, print) => {
      const kind = ctx.args.reboot ? "reboot" : "poweroff";
      await client.shutdown(kind);
      print({ ok: true, kind }, `${kind} requested\n`);
      return 0;
    }),
});

const status = defineCommand({
  meta: { name: "status", description: "services and versions" },
  args: TARGET_ARGS,
  run: (ctx) =>
    withAgent(ctx, async (client, print) => {
      const s = await client.status();
      print(s, `${JSON.stringify(s, null, 2)}\n`);
      return 0;
    }),
});

const waitExit = defineCommand({
  meta: {
    name: "wait-exit",
    description: "wait for the job's exit; exits with the job's code (124 after the timeout)",
  },
  args: {
    timeout: { type: "string", valueHint: "seconds", description: "give up after S seconds" },
    ...TARGET_ARGS,
  },
  run: (ctx) =>
    withAgent(ctx, async (client, print) => {
      const t = ctx.args.timeout;
      const timeoutMs = t !== undefined ? seconds(t, "--timeout") * 1000 : Number.POSITIVE_INFINITY;
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
    }),
});

/** `hero-init agent …`. */
export const agent: Command = {
  meta: {
    name: "agent",
    description: "the host's client of a VM's guest agent (docs/agent.md)",
    notes: `target: one of --addr, --vsock, --vsock-cid, --deployment (or env HERO_AGENT_ADDR);
token: one of --token-file, --token, env HERO_AGENT_TOKEN, --deployment.
Options go before or after the command; exec's ARGV after --.
exit status: the remote code for exec/wait-exit, 2 for usage errors, 255 for agent/transport errors.`,
  },
  args: TARGET_ARGS,
  subCommands: { exec, cp, stat, shutdown, status, "wait-exit": waitExit },
};

/** Runs `hero-init agent …` with env as the environment; returns the exit code. */
export function runAgent(
  args: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  return runTree(agent, args, ["hero-init", "agent"], env);
}
