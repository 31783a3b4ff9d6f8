/**
 * The agent served for real (Bun.serve on 127.0.0.1, port 0, real
 * Bun.spawn) and driven through AgentClient and raw fetch: exec exit codes,
 * timeouts, streaming intact, stdin, files, symlinks, stat, auth, the
 * source ACL, shutdown, wait-exit, the TTY WebSocket and a fuzz of the
 * request parser.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { AgentClient } from "../../host/agent-client.ts";
import { CH_STDERR, CH_STDOUT, FrameDecoder } from "../../lib/agent-protocol.ts";
import { type HeroError, isHeroError } from "../../lib/errors.ts";
import type { ExecWsData } from "./exec.ts";
import { type Agent, createAgent } from "./server.ts";

const TOKEN = "0123456789abcdef0123456789abcdef";
const dir = mkdtempSync(join(tmpdir(), "hero-agent-test-"));

/** Whether a process exists (signal 0). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
let server: Server<ExecWsData>;
let agent: Agent;
let base: string;
let client: AgentClient;
const powerCalls: string[] = [];
let resolveJob: (x: { code: number; message: string }) => void = () => {};
const job = new Promise<{ code: number; message: string }>((r) => {
  resolveJob = r;
});

function serve(a: Agent): Server<ExecWsData> {
  return Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req, srv) => a.fetch(req, srv),
    websocket: a.websocket,
  });
}

beforeAll(() => {
  agent = createAgent({
    token: TOKEN,
    status: () => ({ services: [], version: "test" }),
    power: (kind, reason) => powerCalls.push(`${kind}: ${reason}`),
    jobExit: () => job,
    maxFileSize: 1024 * 1024,
    tuning: { killGraceMs: 300 },
  });
  server = serve(agent);
  base = `http://127.0.0.1:${server.port}`;
  client = new AgentClient({ url: base, token: TOKEN });
});

afterAll(() => {
  server.stop(true);
  rmSync(dir, { recursive: true, force: true });
});

async function run(argv: string[], extra: Record<string, unknown> = {}) {
  const out: Uint8Array[] = [];
  const err: Uint8Array[] = [];
  const exit = await client.exec(
    { argv, ...extra },
    { stdout: (b) => void out.push(b), stderr: (b) => void err.push(b) },
  );
  return {
    exit,
    stdout: Buffer.concat(out).toString(),
    stderr: Buffer.concat(err).toString(),
  };
}

describe("exec", () => {
  test("exit 0 with stdout and stderr on their channels", async () => {
    const r = await run(["sh", "-c", "echo out; echo err >&2"]);
    expect(r.exit).toEqual({ code: 0 });
    expect(r.stdout).toBe("out\n");
    expect(r.stderr).toBe("err\n");
  });

  test("exit 1", async () => {
    expect((await run(["sh", "-c", "exit 1"])).exit.code).toBe(1);
  });

  test("missing command is 127", async () => {
    const r = await run(["/nonexistent/hero-agent-test"]);
    expect(r.exit.code).toBe(127);
    expect(r.exit.error).toContain("not found");
    expect((await run(["no-such-command-hero-agent"])).exit.code).toBe(127);
  });

  test("not executable is 126", async () => {
    const f = join(dir, "noexec.sh");
    writeFileSync(f, "#!/bin/sh\necho hi\n", { mode: 0o644 });
    expect((await run([f])).exit.code).toBe(126);
  });

  test("killed by signal 9 is 137 with the signal name", async () => {
    const r = await run(["sh", "-c", "kill -9 $$"]);
    expect(r.exit).toEqual({ code: 137, signal: "SIGKILL" });
  });

  test("timeout stops the process group and says so", async () => {
    const r = await run(["sh", "-c", "sleep 31.4159 & sleep 31.4159; echo never"], {
      timeout_ms: 300,
    });
    expect(r.exit.timed_out).toBe(true);
    expect(r.exit.code).toBe(124);
    expect(r.exit.signal).toBe("SIGTERM");
    expect(r.stdout).toBe("");
    // Both sleeps (the group) got the signal: they are gone (signal delivery is
    // asynchronous, so allow them a moment to be scheduled and die).
    const left = () => Bun.spawnSync(["pgrep", "-f", "^sleep 31\\.4159$"]).stdout.toString().trim();
    for (let i = 0; i < 100 && left() !== ""; i++) await Bun.sleep(20);
    expect(left()).toBe("");
  });

  test("timeout escalates to SIGKILL when TERM is ignored", async () => {
    const r = await run(["sh", "-c", "trap '' TERM; sleep 5"], { timeout_ms: 200 });
    expect(r.exit.timed_out).toBe(true);
    expect(r.exit.signal).toBe("SIGKILL");
  });

  test("env, cwd and stdin", async () => {
    const r = await run(["sh", "-c", 'echo "$FOO" "$(pwd)"; cat'], {
      env: { FOO: "bar" },
      cwd: dir,
      stdin: Buffer.from("from stdin\n").toString("base64"),
    });
    expect(r.exit.code).toBe(0);
    expect(r.stdout).toBe(`bar ${dir}\nfrom stdin\n`);
  });

  test("streams ~20 MB intact (sha256) on both channels", async () => {
    const src = join(dir, "big.bin");
    writeFileSync(
      src,
      Buffer.alloc(20 * 1024 * 1024 + 12345).map((_, i) => (i * 7919) % 251),
    );
    const want = createHash("sha256").update(readFileSync(src)).digest("hex");
    const hOut = createHash("sha256");
    const hErr = createHash("sha256");
    let errBytes = 0;
    const exit = await client.exec(
      { argv: ["sh", "-c", `cat ${src}; head -c 100000 ${src} >&2`] },
      {
        stdout: (b) => void hOut.update(b),
        stderr: (b) => {
          hErr.update(b);
          errBytes += b.byteLength;
        },
      },
    );
    expect(exit.code).toBe(0);
    expect(hOut.digest("hex")).toBe(want);
    expect(errBytes).toBe(100000);
  }, 60_000);

  test("a slow reader is not buffered without bound (backpressure)", async () => {
    const res = await fetch(`${base}/agent/v1/exec`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}` },
      // The marker file appears only once all 30 MB went into the pipe.
      body: JSON.stringify({
        argv: ["sh", "-c", `head -c 30000000 /dev/zero; touch ${join(dir, "all-written")}`],
      }),
    });
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const dec = new FrameDecoder();
    let n = 0;
    const count = (value: Uint8Array) => {
      for (const f of dec.push(value)) if (f.channel === CH_STDOUT) n += f.payload.byteLength;
    };
    const head = await reader.read();
    if (head.value) count(head.value);
    // Without backpressure the producer writes 30 MB in a few ms; with it, it
    // stays blocked on the pipe while nobody reads (not an RSS reading of this
    // whole test process, which other tests' garbage moves).
    await Bun.sleep(700);
    expect(existsSync(join(dir, "all-written"))).toBe(false);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      count(value);
    }
    expect(n).toBe(30000000);
    expect(dec.pending).toBe(0);
    expect(existsSync(join(dir, "all-written"))).toBe(true);
  }, 60_000);

  test("a client that disconnects kills the command", async () => {
    const pidFile = join(dir, "pid");
    const ac = new AbortController();
    const frames = client.execFrames(
      { argv: ["sh", "-c", `echo $$ > ${pidFile}; echo started; exec sleep 30`] },
      ac.signal,
    );
    const first = await frames.next();
    expect(first.done).toBe(false);
    ac.abort();
    await frames.return(undefined).catch(() => {});
    const pid = Number(readFileSync(pidFile, "utf8"));
    const alive = () => isAlive(pid);
    for (let i = 0; i < 50 && alive(); i++) await Bun.sleep(100);
    expect(alive()).toBe(false);
  }, 10_000);

  test("a background child holding stdout does not hold the answer open", async () => {
    const pidFile = join(tmpdir(), `hero-bg-${process.pid}`);
    const r = await run(["sh", "-c", `sleep 30 & echo $! > ${pidFile}; echo hi`]);
    expect(r.exit.code).toBe(0);
    expect(r.stdout).toBe("hi\n");
    // The answer came while the child that holds stdout still runs.
    const bg = Number(readFileSync(pidFile, "utf8"));
    expect(() => process.kill(bg, 0)).not.toThrow();
    process.kill(bg, "SIGKILL");
    rmSync(pidFile, { force: true });
  }, 10_000);

  test("concurrency limit answers 429", async () => {
    const a = createAgent({ token: TOKEN, maxExecs: 1 });
    const s = serve(a);
    try {
      const c = new AgentClient({ url: `http://127.0.0.1:${s.port}`, token: TOKEN });
      const first = c.exec({ argv: ["sleep", "0.5"] });
      await Bun.sleep(100);
      const e = await c.exec({ argv: ["true"] }).catch((x: HeroError) => x);
      expect((e as HeroError).detail.status).toBe(429);
      expect((await first).code).toBe(0);
      expect((await c.exec({ argv: ["true"] })).code).toBe(0);
    } finally {
      s.stop(true);
    }
  });

  test("bad requests are 400 with a clear message", async () => {
    const post = (body: string) =>
      fetch(`${base}/agent/v1/exec`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}` },
        body,
      });
    let r = await post("{");
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toContain("JSON");
    r = await post(JSON.stringify({ argv: [] }));
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toContain("argv");
    r = await post(JSON.stringify({ argv: ["true"], cwd: "/nonexistent-dir" }));
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: string }).error).toContain("does not exist");
    r = await post(JSON.stringify({ argv: ["true"], bogus: 1 }));
    expect(r.status).toBe(400);
  });
});

describe("files", () => {
  test("put/get round trip keeps bytes, mode and mtime", async () => {
    const data = new Uint8Array(300000).map((_, i) => i % 256);
    const remote = join(dir, "sub", "f.bin");
    const put = await client.putFile(remote, data, { mode: 0o750, mtime: 1700000000, mkdir: true });
    expect(put.size).toBe(data.byteLength);
    expect(put.mode).toBe("0750");
    const st = statSync(remote);
    expect(st.mode & 0o7777).toBe(0o750);
    expect(Math.floor(st.mtimeMs / 1000)).toBe(1700000000);
    const got = await client.getFile(remote);
    expect(got.mode).toBe(0o750);
    expect(got.mtime).toBe(1700000000);
    expect(got.type).toBe("file");
    expect(new Uint8Array(await new Response(got.body).arrayBuffer())).toEqual(data);
    // no temp files left behind
    expect(
      (
        await Array.fromAsync(
          new Bun.Glob(".*hero-agent*").scan({ cwd: join(dir, "sub"), dot: true }),
        )
      ).length,
    ).toBe(0);
  });

  test("copyTo / copyFrom keep mode and mtime", async () => {
    const local = join(dir, "local.txt");
    writeFileSync(local, "hello\n", { mode: 0o600 });
    const { utimesSync } = await import("node:fs");
    utimesSync(local, 1600000000, 1600000000);
    await client.copyTo(local, join(dir, "remote.txt"));
    const back = join(dir, "back.txt");
    await client.copyFrom(join(dir, "remote.txt"), back);
    expect(readFileSync(back, "utf8")).toBe("hello\n");
    expect(statSync(back).mode & 0o7777).toBe(0o600);
    expect(Math.floor(statSync(back).mtimeMs / 1000)).toBe(1600000000);
  });

  test("too big is 413, while streaming and from Content-Length, and nothing is left", async () => {
    const remote = join(dir, "big.out");
    const e = await client
      .putFile(remote, new Uint8Array(1024 * 1024 + 1))
      .catch((x: HeroError) => x);
    expect(isHeroError(e, "agent")).toBe(true);
    expect((e as HeroError).detail.status).toBe(413);
    // a streamed body without Content-Length
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 20; i++) c.enqueue(new Uint8Array(64 * 1024));
        c.close();
      },
    });
    const r = await fetch(`${base}/agent/v1/files?path=${encodeURIComponent(remote)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${TOKEN}` },
      body: stream,
    });
    expect(r.status).toBe(413);
    expect(existsSync(remote)).toBe(false);
  });

  test("missing parent is 404 unless mkdir=1; relative path is 400", async () => {
    const e = await client.putFile(join(dir, "nope", "x"), "x").catch((x: HeroError) => x);
    expect((e as HeroError).detail.status).toBe(404);
    expect((e as HeroError).message).toContain("mkdir=1");
    const r = await client.request("/files?path=relative/x");
    expect(r.status).toBe(400);
    const g = await client.getFile(join(dir, "missing")).catch((x: HeroError) => x);
    expect((g as HeroError).detail.status).toBe(404);
  });

  test("HEAD gives the metadata without the body", async () => {
    const f = join(dir, "head.txt");
    writeFileSync(f, "12345", { mode: 0o640 });
    const r = await client.request(`/files?path=${encodeURIComponent(f)}`, { method: "HEAD" });
    expect(r.status).toBe(200);
    expect(r.headers.get("x-hero-mode")).toBe("0640");
    expect(r.headers.get("content-length")).toBe("5");
    expect(await r.text()).toBe("");
  });

  test("symlinks: create, read target with nofollow, stat", async () => {
    const link = join(dir, "link");
    writeFileSync(join(dir, "target.txt"), "T");
    const st = await client.putSymlink(link, "target.txt");
    expect(st.type).toBe("symlink");
    expect(st.target).toBe("target.txt");
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    const nf = await client.getFile(link, { nofollow: true });
    expect(nf.type).toBe("symlink");
    expect(nf.target).toBe("target.txt");
    const f = await client.getFile(link);
    expect(await new Response(f.body).text()).toBe("T");
    const s = await client.stat(join(dir, "target.txt"));
    expect(s).toMatchObject({ type: "file", size: 1 });
    expect((await client.stat(link, true)).type).toBe("file");
    expect((await client.stat(dir)).type).toBe("directory");
  });
});

describe("auth and ACL", () => {
  test("missing or wrong token is 401", async () => {
    let r = await fetch(`${base}/agent/v1/status`);
    expect(r.status).toBe(401);
    expect(((await r.json()) as { error: string }).error).toContain("token");
    r = await fetch(`${base}/agent/v1/status`, { headers: { authorization: "Bearer wrong" } });
    expect(r.status).toBe(401);
    r = await fetch(`${base}/agent/v1/status`, {
      headers: { authorization: `Bearer ${TOKEN}x` },
    });
    expect(r.status).toBe(401);
    const bad = new AgentClient({ url: base, token: "nope" });
    const e = await bad.status().catch((x: HeroError) => x);
    expect((e as HeroError).detail.status).toBe(401);
  });

  test("a non-allowed source is 403, before auth", async () => {
    const denying = createAgent({ token: TOKEN, allow: () => false });
    const s = serve(denying);
    try {
      const r = await fetch(`http://127.0.0.1:${s.port}/agent/v1/status`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(r.status).toBe(403);
      expect(((await r.json()) as { error: string }).error).toContain("127.0.0.1");
      const r2 = await fetch(`http://127.0.0.1:${s.port}/agent/v1/status`);
      expect(r2.status).toBe(403);
    } finally {
      s.stop(true);
    }
  });

  test("the default policy allows loopback", async () => {
    expect(
      (await fetch(`${base}/agent/v1/status`, { headers: { authorization: `Bearer ${TOKEN}` } }))
        .status,
    ).toBe(200);
  });

  test("an empty token refuses to construct", () => {
    expect(() => createAgent({ token: " " })).toThrow("without a token");
  });
});

describe("control", () => {
  test("status", async () => {
    expect(await client.status()).toEqual({ services: [], version: "test" });
  });

  test("shutdown answers 202 then calls power", async () => {
    await client.shutdown("reboot");
    await Bun.sleep(50);
    expect(powerCalls.at(-1)).toStartWith("reboot: agent request from 127.0.0.1");
    const r = await client.request("/shutdown", { method: "POST", body: '{"kind":"halt"}' });
    expect(r.status).toBe(400);
  });

  test("wait-exit long-polls until the job ends", async () => {
    expect(await client.waitExit(100)).toBeNull();
    const waiting = client.waitExit(10_000);
    setTimeout(() => resolveJob({ code: 3, message: "job failed" }), 200);
    expect(await waiting).toEqual({ code: 3, message: "job failed" });
    expect(await client.waitExit(0)).toEqual({ code: 3, message: "job failed" });
  });

  test("wait-exit without a job is 404", async () => {
    const a = createAgent({ token: TOKEN, jobExit: () => null });
    const s = serve(a);
    try {
      const c = new AgentClient({ url: `http://127.0.0.1:${s.port}`, token: TOKEN });
      const e = await c.waitExit(100).catch((x: HeroError) => x);
      expect((e as HeroError).detail.status).toBe(404);
    } finally {
      s.stop(true);
    }
  });

  test("unknown endpoint is 404 JSON", async () => {
    const r = await client.request("/nope");
    expect(r.status).toBe(404);
    expect(((await r.json()) as { error: string }).error).toContain("no such endpoint");
  });
});

describe("exec over WebSocket with a TTY", () => {
  test("runs on a PTY, takes input and resize, reports the exit", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/agent/v1/exec/ws`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    } as unknown as string[]);
    ws.binaryType = "arraybuffer";
    let out = "";
    const texts: string[] = [];
    const closed = new Promise<void>((resolve) => {
      ws.onclose = () => resolve();
    });
    ws.onmessage = (m) => {
      if (typeof m.data === "string") texts.push(m.data);
      else out += Buffer.from(m.data as ArrayBuffer).toString();
    };
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => resolve();
      ws.onerror = () => reject(new Error("ws error"));
    });
    ws.send(
      JSON.stringify({
        argv: ["sh", "-c", "tty; read line; stty size; echo got:$line; exit 5"],
        cols: 80,
        rows: 24,
        tty: true,
      }),
    );
    await Bun.sleep(300);
    ws.send(JSON.stringify({ resize: { cols: 100, rows: 30 } }));
    await Bun.sleep(100);
    ws.send(new TextEncoder().encode("hello\n"));
    await closed;
    expect(out).toContain("/dev/pts/");
    expect(out).toContain("30 100");
    expect(out).toContain("got:hello");
    expect(texts.map((t) => JSON.parse(t))).toContainEqual({ exit: { code: 5 } });
  }, 10_000);

  test("a client that stops reading is dropped and its command killed (no unbounded buffer)", async () => {
    const pidFile = join(dir, "ws-slow.pid");
    // A raw WebSocket client: handshake, one masked text frame, then never read again.
    const sock = connect(server.port as number, "127.0.0.1");
    await new Promise<void>((resolve) => sock.once("connect", () => resolve()));
    sock.write(
      "GET /agent/v1/exec/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${Buffer.from("0123456789abcdef").toString("base64")}\r\n` +
        `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`,
    );
    await new Promise<void>((resolve) => sock.once("data", () => resolve()));
    const payload = Buffer.from(
      JSON.stringify({ argv: ["sh", "-c", `echo $$ > ${pidFile}; exec yes flood`], tty: true }),
    );
    const mask = Buffer.from([1, 2, 3, 4]);
    const head =
      payload.length < 126
        ? Buffer.from([0x81, 0x80 | payload.length])
        : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    sock.write(
      Buffer.concat([head, mask, Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)))]),
    );
    sock.pause(); // from now on nothing is read: the kernel buffers fill, then the agent's
    for (let i = 0; i < 100 && !existsSync(pidFile); i++) await Bun.sleep(20);
    const pid = Number(readFileSync(pidFile, "utf8"));
    const alive = () => isAlive(pid);
    // The agent drops the session past 8 MiB behind and kills the command.
    for (let i = 0; i < 300 && alive(); i++) await Bun.sleep(100);
    expect(alive()).toBe(false);
    sock.destroy();
  }, 60_000);

  test("a bad first message is answered with an error", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/agent/v1/exec/ws`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    } as unknown as string[]);
    const texts: string[] = [];
    const closed = new Promise<void>((resolve) => {
      ws.onclose = () => resolve();
    });
    ws.onmessage = (m) => void texts.push(String(m.data));
    await new Promise<void>((resolve) => {
      ws.onopen = () => resolve();
    });
    ws.send("{not json");
    await closed;
    expect(texts[0]).toContain("error");
    expect(agent.running).toBe(0);
  });

  test("upgrade without a token is refused", async () => {
    const r = await fetch(`${base}/agent/v1/exec/ws`, {
      headers: { upgrade: "websocket", connection: "upgrade" },
    });
    expect(r.status).toBe(401);
  });
});

describe("fuzz", () => {
  test("random methods, paths, headers and bodies always get an answer", async () => {
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pick = <T>(a: readonly T[]): T => a[rnd(a.length)] as T;
    const bytes = (n: number) => new Uint8Array(n).map(() => rnd(256));
    const paths = [
      "/agent/v1/exec",
      "/agent/v1/files",
      "/agent/v1/stat",
      "/agent/v1/shutdown",
      "/agent/v1/status",
      "/agent/v1/wait-exit",
      "/agent/v1/exec/ws",
      "/agent/v1/",
      "/",
      "/agent/v2/x",
    ];
    const queries = [
      "",
      "?path=",
      "?path=/",
      "?path=%00",
      `?path=${encodeURIComponent(join(dir, "fz"))}&mode=99999`,
      `?path=${encodeURIComponent(join(dir, "fz"))}&mtime=abc`,
      `?path=${encodeURIComponent(join(dir, "fz"))}&uid=-1`,
      "?timeout_ms=-5",
      "?timeout_ms=abc",
      `?path=${encodeURIComponent(join(dir, "fz"))}&symlink=`,
    ];
    const bodies = [
      () => bytes(rnd(300)),
      () => "{}",
      () => '{"argv":',
      () => JSON.stringify({ argv: [1, 2] }),
      () => JSON.stringify({ argv: ["true"], env: { "A=B": "x" } }),
      () => JSON.stringify({ argv: ["true"], timeout_ms: -1 }),
      () => JSON.stringify({ argv: ["true"], stdin: "!!!" }),
      () => JSON.stringify({ kind: "reboot", extra: true }),
      () => "null",
      () => "[]",
    ];
    const methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    const auths = [
      `Bearer ${TOKEN}`,
      `Bearer ${TOKEN}`,
      "Bearer",
      "bearer x",
      "",
      "Basic Zm9v",
      `Bearer ${TOKEN} junk`,
    ];
    for (let i = 0; i < 300; i++) {
      const method = pick(methods);
      const headers: Record<string, string> = {};
      const auth = pick(auths);
      if (auth) headers.authorization = auth;
      if (rnd(3) === 0)
        headers["content-type"] = pick(["application/json", "text/plain", "\u00ff"]);
      if (rnd(5) === 0)
        headers[`x-fuzz-${rnd(100)}`] = Buffer.from(bytes(10))
          .toString("latin1")
          .replace(/[\r\n\0]/g, "");
      const body = method === "GET" || method === "HEAD" ? undefined : pick(bodies)();
      let res: Response;
      try {
        res = await fetch(`${base}${pick(paths)}${pick(queries)}`, { method, headers, body });
      } catch (e) {
        // only a header Bun's client itself rejects may fail here
        expect(String(e)).toMatch(/header|Header/);
        continue;
      }
      expect(res.status).toBeGreaterThanOrEqual(200);
      expect(res.status).toBeLessThan(600);
      expect(res.status).not.toBe(500);
      if (res.status >= 400 && method !== "HEAD") {
        const j = (await res.json()) as { error?: string };
        expect(typeof j.error).toBe("string");
      } else await res.arrayBuffer();
    }
    // still serving
    expect(await client.status()).toEqual({ services: [], version: "test" });
  }, 60_000);

  test("the frame decoder survives random bytes", () => {
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let i = 0; i < 500; i++) {
      const d = new FrameDecoder();
      try {
        d.push(new Uint8Array(rnd(64)).map(() => rnd(256)));
      } catch (e) {
        expect((e as Error).message).toContain("corrupt");
      }
    }
  });
});

describe("the Bun adapter", () => {
  test("without Bun's server the address is unknown: 403, never a throw", async () => {
    const a = createAgent({ token: TOKEN });
    const r = (await a.fetch(
      new Request("http://x/agent/v1/status", { headers: { authorization: `Bearer ${TOKEN}` } }),
    )) as Response;
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: string }).error).toContain("(unknown)");
  });

  test("a log sink that throws does not break a request", async () => {
    const a = createAgent({
      token: TOKEN,
      allow: () => true,
      log: () => {
        throw new Error("sink broke");
      },
    });
    const r = (await a.fetch(new Request("http://x/agent/v1/status"))) as Response;
    expect(r.status).toBe(401);
  });
});

test("stderr frames use channel 2", () => {
  expect(CH_STDERR).toBe(2);
});
