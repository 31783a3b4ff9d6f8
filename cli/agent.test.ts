/**
 * `hero-init agent` (cli/agent.ts) against a local agent: the CLI runs
 * as a child process (its stdout, stderr and exit code are what a user
 * sees); argument parsing is tested in-process.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Server } from "bun";
import type { ExecWsData } from "../guest/agent/exec.ts";
import { createAgent } from "../guest/agent/server.ts";
import { agentUrl, execRequest, parseVsockArg, runAgent } from "./agent.ts";

const TOKEN = "cli-test-token-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "hero-agent-cli-"));
const tokenFile = join(dir, "agent.token");
writeFileSync(tokenFile, `${TOKEN}\n`);
const powered: string[] = [];
let server: Server<ExecWsData>;
let addr: string;

beforeAll(() => {
  const agent = createAgent({
    token: TOKEN,
    status: () => ({ services: [{ name: "a", state: "Running" }] }),
    power: (kind) => powered.push(kind),
    jobExit: () => ({ code: 4, message: "job failed" }),
  });
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req, srv) => agent.fetch(req, srv),
    websocket: agent.websocket,
  });
  addr = `http://127.0.0.1:${server.port}`;
});
afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

const CLI = resolve(import.meta.dir, "agent.ts");

async function cli(args: string[], env: Record<string, string> = {}) {
  const p = Bun.spawn(
    [
      process.execPath,
      "-e",
      `const {runAgent} = await import(${JSON.stringify(CLI)}); process.exitCode = await runAgent(JSON.parse(process.env.ARGS));`,
    ],
    {
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ARGS: JSON.stringify(args), ...env },
      stdout: "pipe",
      stderr: "pipe",
    },
  );
  const [stdout, stderr, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  return { stdout, stderr, code };
}

describe("hero-init agent", () => {
  test("exec streams output and exits with the remote code", async () => {
    const r = await cli([
      "--addr",
      addr,
      "--token-file",
      tokenFile,
      "exec",
      "--",
      "sh",
      "-c",
      "echo out; echo err >&2; exit 3",
    ]);
    expect(r).toEqual({ stdout: "out\n", stderr: "err\n", code: 3 });
  });

  test("exec with env, cwd, --json and the token from the environment", async () => {
    const r = await cli(
      [
        "--addr",
        addr,
        "exec",
        "--env",
        "X=1",
        "--cwd",
        "/tmp",
        "--json",
        "--",
        "sh",
        "-c",
        "echo $X $(pwd)",
      ],
      { HERO_AGENT_TOKEN: TOKEN },
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ code: 0, stdout: "1 /tmp\n", stderr: "" });
  });

  test("exec of a missing command is 127 with a message", async () => {
    const r = await cli(["--addr", addr, "--token", TOKEN, "exec", "--", "no-such-cmd-x"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain("not found");
  });

  test("cp both ways keeps mode and mtime", async () => {
    const local = join(dir, "src.txt");
    writeFileSync(local, "payload", { mode: 0o751 });
    utimesSync(local, 1500000000, 1500000000);
    const remote = join(dir, "vmside", "dst.txt");
    let r = await cli(["--addr", addr, "--token", TOKEN, "cp", local, `vm:${remote}`, "--mkdir"]);
    expect(r.code).toBe(0);
    expect(statSync(remote).mode & 0o7777).toBe(0o751);
    const back = join(dir, "back.txt");
    r = await cli(["--addr", addr, "--token", TOKEN, "--json", "cp", `vm:${remote}`, back]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ size: 7, mode: "0751", mtime: 1500000000 });
    expect(readFileSync(back, "utf8")).toBe("payload");
    expect(Math.floor(statSync(back).mtimeMs / 1000)).toBe(1500000000);
  });

  test("status, shutdown, wait-exit", async () => {
    let r = await cli(["--addr", addr, "--token", TOKEN, "status", "--json"]);
    expect(JSON.parse(r.stdout)).toEqual({ services: [{ name: "a", state: "Running" }] });
    r = await cli(["--addr", addr, "--token", TOKEN, "shutdown", "--reboot"]);
    expect(r.code).toBe(0);
    await Bun.sleep(50);
    expect(powered).toContain("reboot");
    r = await cli(["--addr", addr, "--token", TOKEN, "wait-exit", "--timeout", "5", "--json"]);
    expect(r.code).toBe(4);
    expect(JSON.parse(r.stdout)).toEqual({ code: 4, message: "job failed" });
  });

  test("a wrong token is an agent error (255) with the agent's message", async () => {
    const r = await cli(["--addr", addr, "--token", "wrong", "status"]);
    expect(r.code).toBe(255);
    expect(r.stderr).toContain("token");
  });
});

describe("usage errors are exit 2", () => {
  test.each([
    [[]],
    [["--addr", "127.0.0.1:1", "--token", "t"]],
    [["--token", "t", "status"]],
    [["--addr", "127.0.0.1:1", "status"]],
    [["--addr", "127.0.0.1:1", "--token", "t", "exec"]],
    [["--addr", "127.0.0.1:1", "--token", "t", "cp", "a", "b"]],
    [["--addr", "127.0.0.1:1", "--token", "t", "frobnicate"]],
    [["--vsock", "nocolon", "--token", "t", "status"]],
    [["--addr", "127.0.0.1:1", "--token", "t", "wait-exit", "--timeout", "x"]],
  ])("%j", async (args) => {
    const orig = process.stderr.write.bind(process.stderr);
    let err = "";
    process.stderr.write = ((s: string) => {
      err += s;
      return true;
    }) as typeof process.stderr.write;
    try {
      expect(await runAgent(args as string[], {})).toBe(2);
    } finally {
      process.stderr.write = orig;
    }
    expect(err).toContain("usage");
  });

  test("addresses", () => {
    expect(agentUrl("127.0.0.1")).toBe("http://127.0.0.1:9998");
    expect(agentUrl("4ab:1::2")).toBe("http://[4ab:1::2]:9998");
    expect(agentUrl("http://[4ab:1::2]:7000/")).toBe("http://[4ab:1::2]:7000");
    expect(parseVsockArg("/run/vm/vsock.sock:9998")).toEqual({
      socket: "/run/vm/vsock.sock",
      port: 9998,
    });
  });
});

describe("exec requests (pure)", () => {
  test("options map to the request; repeated --env are all kept", () => {
    expect(
      execRequest({ timeout: "1.5", cwd: "/tmp", env: ["A=1", "B=x=y"] }, ["ls", "-l"]),
    ).toEqual({ argv: ["ls", "-l"], timeout_ms: 1500, cwd: "/tmp", env: { A: "1", B: "x=y" } });
    expect(execRequest({ env: [] }, ["true"])).toEqual({ argv: ["true"] });
  });

  test.each([
    [{ env: [] }, [], "exec: give the command after --"],
    [{ env: ["=1"] }, ["x"], '--env wants K=V (got "=1")'],
    [{ timeout: "soon", env: [] }, ["x"], '--timeout wants seconds (got "soon")'],
  ])("%j %j → %s", (o, argv, message) => {
    expect(() => execRequest(o, argv)).toThrow(message);
  });
});
