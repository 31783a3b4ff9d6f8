/**
 * The agent stays off without a usable token: nothing listens, and the log
 * says why. With a token it listens and refuses a wrong one.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logHistory } from "../../lib/log.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";
import type { Agent } from "../agent/server.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { lazyAgent, startAgent } from "./agent.ts";

const dir = mkdtempSync(join(tmpdir(), "hero-agent-off-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A free loopback port (bound, then released). */
function freePort(): number {
  const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const p = s.port;
  s.stop(true);
  return p;
}

/** Whether anything accepts a TCP connection on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, "127.0.0.1");
    c.on("connect", () => {
      c.destroy();
      resolve(true);
    });
    c.on("error", () => resolve(false));
  });
}

const sup = { names: () => [], status: () => ({}) } as unknown as Supervisor;
const deps = { sup, power: () => {}, jobExit: () => null };

function agentCfg(tokenFile: string, port: number) {
  const { config } = parseVmConfig("", "vm.toml");
  return { ...config.agent, token_file: tokenFile, port, vsock: false };
}

describe("agent token", () => {
  test("a missing token file: not started, nothing listens, the log names the file", async () => {
    const port = freePort();
    const file = join(dir, "absent.token");
    expect(startAgent(agentCfg(file, port), deps)).toBeNull();
    expect(await listening(port)).toBe(false);
    expect(logHistory().join("\n")).toContain(`agent: not started: ${file}`);
  });

  test("a token shorter than 16 characters: not started, nothing listens", async () => {
    const port = freePort();
    const file = join(dir, "short.token");
    writeFileSync(file, "short-token\n", { mode: 0o600 });
    expect(startAgent(agentCfg(file, port), deps)).toBeNull();
    expect(await listening(port)).toBe(false);
    expect(logHistory().join("\n")).toContain("the token is shorter than 16 characters");
  });

  test("a good token: it listens, and a wrong token gets 401 (positive control)", async () => {
    const port = freePort();
    const file = join(dir, "good.token");
    writeFileSync(file, "0123456789abcdef0123\n", { mode: 0o600 });
    expect(startAgent(agentCfg(file, port), deps)).not.toBeNull();
    expect(await listening(port)).toBe(true);
    const res = await fetch(`http://127.0.0.1:${port}/agent/v1/status`, {
      headers: { authorization: "Bearer wrong-wrong-wrong-wrong" },
    });
    expect(res.status).toBe(401);
    const ok = await fetch(`http://127.0.0.1:${port}/agent/v1/status`, {
      headers: { authorization: "Bearer 0123456789abcdef0123" },
    });
    expect(ok.status).toBe(200);
  });
});

describe("the agent's exec options", () => {
  test("a failed load fails that request (500, the error named) and the next request loads them again", async () => {
    const port = freePort();
    const file = join(dir, "retry.token");
    writeFileSync(file, "0123456789abcdef0123\n", { mode: 0o600 });
    let loads = 0;
    const loadExec = async () => {
      loads++;
      if (loads === 1) throw new Error("exec chunk missing");
      return { cgroupExecGroups: () => null };
    };
    expect(startAgent(agentCfg(file, port), { ...deps, loadExec })).not.toBeNull();
    expect(loads).toBe(0);
    const status = () =>
      fetch(`http://127.0.0.1:${port}/agent/v1/status`, {
        headers: { authorization: "Bearer 0123456789abcdef0123" },
      });
    const failed = await status();
    expect(failed.status).toBe(500);
    expect(await failed.text()).toContain("exec chunk missing");
    const ok = await status();
    expect(ok.status).toBe(200);
    expect(loads).toBe(2);
    expect((await status()).status).toBe(200);
    expect(loads).toBe(2);
  });
});

describe("lazyAgent", () => {
  const agent = (body: string): Agent =>
    ({
      fetch: async () => new Response(body),
      websocket: { message() {}, close() {} },
      running: 0,
    }) as unknown as Agent;

  test("the agent's code loads at the first request, once; a failed load fails that request only", async () => {
    let calls = 0;
    const served = lazyAgent(async () => {
      calls++;
      if (calls === 1) throw new Error("chunk missing");
      return agent("ok");
    });
    expect(calls).toBe(0);
    const req = () => new Request("http://127.0.0.1/agent/v1/status");
    await expect(served.fetch(req())).rejects.toThrow("cannot load the agent: chunk missing");
    expect(await (await served.fetch(req()))?.text()).toBe("ok");
    expect(await (await served.fetch(req()))?.text()).toBe("ok");
    expect(calls).toBe(2);
    expect(served.websocket.maxPayloadLength).toBe(1024 * 1024);
  });

  test("a source the agent refuses gets its 403 before the agent's code loads (attack: load by a stranger)", async () => {
    let calls = 0;
    const served = lazyAgent(
      async () => {
        calls++;
        return agent("ok");
      },
      (ip) => ip === "127.0.0.1",
    );
    const from = (address: string | null) =>
      ({ requestIP: () => (address === null ? null : { address }) }) as unknown as Parameters<
        typeof served.fetch
      >[1];
    const req = () => new Request("http://10.0.2.15:9998/agent/v1/status");
    for (const ip of ["203.0.113.9", null]) {
      const res = await served.fetch(req(), from(ip));
      expect(res?.status).toBe(403);
      expect(await res?.json()).toEqual({
        error: `source address ${ip ?? "(unknown)"} is not allowed`,
      });
    }
    expect(calls).toBe(0);
    expect(logHistory().join("\n")).toContain("agent: refused 203.0.113.9: not an allowed source");
    // A policy that throws refuses too.
    const throwing = lazyAgent(
      async () => {
        calls++;
        return agent("ok");
      },
      () => {
        throw new Error("bad policy");
      },
    );
    expect((await throwing.fetch(req(), from("127.0.0.1")))?.status).toBe(403);
    expect(calls).toBe(0);
    // The allowed source reaches the agent, which loads once.
    expect(await (await served.fetch(req(), from("127.0.0.1")))?.text()).toBe("ok");
    expect(calls).toBe(1);
  });
});
