/**
 * Hybrid vsock, host side: the OK line parser, and the handshake plus HTTP
 * through a fake Cloud Hypervisor socket (a unix socket server that answers
 * CONNECT and then forwards to an agent on 127.0.0.1).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import * as net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import type { ExecWsData } from "../guest/agent/exec.ts";
import { createAgent } from "../guest/agent/server.ts";
import { type HeroError, isHeroError } from "../lib/errors.ts";
import { AgentClient } from "./agent-client.ts";
import { parseOkLine, vsockConnect } from "./vsock.ts";

const TOKEN = "vsock-test-token-0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "hero-vsock-test-"));
const chSocket = join(dir, "vsock.sock");
let agentServer: Server<ExecWsData>;
let fake: net.Server;
const connects: string[] = [];

beforeAll(async () => {
  const agent = createAgent({ token: TOKEN, status: () => ({ via: "vsock" }) });
  agentServer = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req, srv) => agent.fetch(req, srv),
    websocket: agent.websocket,
  });
  // The fake hypervisor: CONNECT 9998 → OK, then the stream is the agent's; other ports are refused.
  fake = net.createServer((c) => {
    let buf = "";
    const onData = (d: Buffer) => {
      buf += d.toString("latin1");
      const nl = buf.indexOf("\n");
      if (nl < 0) return;
      c.off("data", onData);
      const line = buf.slice(0, nl);
      connects.push(line);
      if (line !== "CONNECT 9998") {
        c.end("ERR no listener\n");
        return;
      }
      c.pause();
      const up = net.createConnection(
        { host: "127.0.0.1", port: agentServer.port as number },
        () => {
          c.write("OK 1073741824\n");
          const rest = buf.slice(nl + 1);
          if (rest) up.write(Buffer.from(rest, "latin1"));
          c.pipe(up);
          up.pipe(c);
          c.resume();
        },
      );
      up.on("error", () => c.destroy());
      c.on("error", () => up.destroy());
    };
    c.on("data", onData);
  });
  await new Promise<void>((r) => fake.listen(chSocket, () => r()));
});

afterAll(() => {
  fake.close();
  agentServer.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

describe("parseOkLine", () => {
  test("accepts OK <port>", () => {
    expect(parseOkLine("OK 1073741824\n")).toEqual({ ok: true, hostPort: 1073741824 });
    expect(parseOkLine("OK 5")).toEqual({ ok: true, hostPort: 5 });
  });
  test("refuses anything else with a clear message", () => {
    for (const l of ["", "OK", "OK x\n", "ok 5\n", "ERR\n", "OK 5 6\n", "OK 12345678901\n"]) {
      const r = parseOkLine(l);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toMatch(/vsock|expected/);
    }
  });
});

describe("through a fake Cloud Hypervisor socket", () => {
  test("handshake sends CONNECT <port> and returns a connected stream", async () => {
    const s = await vsockConnect(chSocket, 9998);
    s.destroy();
    expect(connects).toContain("CONNECT 9998");
  });

  test("a refused port is a clear error", async () => {
    const e = await vsockConnect(chSocket, 1234).catch((x: Error) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as Error).message).toContain("ERR no listener");
  });

  test("a missing socket is a clear error", async () => {
    const e = await vsockConnect(join(dir, "missing.sock"), 9998).catch((x: Error) => x);
    expect((e as Error).message).toContain("missing.sock");
  });

  test("AgentClient speaks HTTP over it: status, exec, files", async () => {
    const c = new AgentClient({ vsock: { socket: chSocket, port: 9998 }, token: TOKEN });
    try {
      expect(await c.status()).toEqual({ via: "vsock" });
      let out = "";
      const exit = await c.exec(
        { argv: ["sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a; exit 7"] },
        {
          stdout: (b) => {
            out += Buffer.from(b).toString();
          },
        },
      );
      expect(exit.code).toBe(7);
      expect(out.length).toBe(3000000);
      const f = join(dir, "via-vsock");
      await c.putFile(f, "hello", { mode: 0o640, mtime: 1650000000 });
      const g = await c.getFile(f);
      expect(g.mode).toBe(0o640);
      expect(g.mtime).toBe(1650000000);
      expect(await new Response(g.body).text()).toBe("hello");
    } finally {
      c.close();
    }
  });

  test("a wrong port surfaces as an agent error, not a hang", async () => {
    const c = new AgentClient({ vsock: { socket: chSocket, port: 4321 }, token: TOKEN });
    try {
      const e = await c.status().catch((x: HeroError) => x);
      expect(isHeroError(e, "agent")).toBe(true);
      expect((e as HeroError).message).toContain("ERR no listener");
    } finally {
      c.close();
    }
  });
});
