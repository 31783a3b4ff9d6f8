/** The pure parts of the agent protocol: framing, schemas, exit codes, parameters. */
import { describe, expect, test } from "bun:test";
import {
  agentError,
  CH_EXIT,
  CH_STDERR,
  CH_STDOUT,
  decodeExit,
  ExecRequestSchema,
  encodeExit,
  encodeFrame,
  exitCodeOf,
  FrameDecoder,
  formatMode,
  parseId,
  parseJson,
  parseMode,
  parseMtime,
  pathError,
  signalNumber,
  spawnErrorExit,
  WsControlSchema,
  WsStartSchema,
} from "./agent-protocol.ts";

describe("framing", () => {
  test("encode then decode across arbitrary chunk boundaries", () => {
    const frames = [
      encodeFrame(CH_STDOUT, new TextEncoder().encode("hello")),
      encodeFrame(CH_STDERR, new Uint8Array(0)),
      encodeFrame(CH_STDOUT, new Uint8Array(70000).fill(7)),
      encodeExit({ code: 137, signal: "SIGKILL" }),
    ];
    const all = Buffer.concat(frames);
    for (const step of [1, 3, 5, 4096, all.byteLength]) {
      const d = new FrameDecoder();
      const got = [];
      for (let i = 0; i < all.byteLength; i += step) got.push(...d.push(all.subarray(i, i + step)));
      expect(d.pending).toBe(0);
      expect(got.map((f) => f.channel)).toEqual([CH_STDOUT, CH_STDERR, CH_STDOUT, CH_EXIT]);
      expect(new TextDecoder().decode(got[0]?.payload)).toBe("hello");
      expect(got[2]?.payload.byteLength).toBe(70000);
      expect(decodeExit(got[3]?.payload as Uint8Array)).toEqual({ code: 137, signal: "SIGKILL" });
    }
  });

  test("the header is channel + big-endian length", () => {
    expect([...encodeFrame(2, new Uint8Array([9, 9]))]).toEqual([2, 0, 0, 0, 2, 9, 9]);
  });

  test("corrupt streams are refused", () => {
    expect(() => new FrameDecoder().push(new Uint8Array([9, 0, 0, 0, 0]))).toThrow("channel");
    expect(() => new FrameDecoder().push(new Uint8Array([1, 0xff, 0, 0, 0]))).toThrow("frame of");
    expect(() => decodeExit(new TextEncoder().encode("{}"))).toThrow("code");
  });
});

describe("schemas", () => {
  test("exec request", () => {
    expect(parseJson(ExecRequestSchema, '{"argv":["ls","-l"],"timeout_ms":5}').ok).toBe(true);
    const bad = (s: string, msg: string) => {
      const r = parseJson(ExecRequestSchema, s);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error).toContain(msg);
    };
    bad("nope", "JSON");
    bad('{"argv":[]}', "at least one");
    bad('{"argv":[""]}', "argv[0]");
    bad('{"argv":["a\\u0000"]}', "NUL");
    bad('{"argv":["ls"],"cwd":"rel"}', "absolute");
    bad('{"argv":["ls"],"env":{"A=B":"x"}}', "env");
    bad('{"argv":["ls"],"stdin":"***"}', "base64");
    bad('{"argv":["ls"],"timeout_ms":0}', "timeout_ms");
    bad('{"argv":["ls"],"x":1}', "x");
  });

  test("websocket messages", () => {
    const s = parseJson(WsStartSchema, '{"argv":["sh"]}');
    expect(s.ok && s.value).toEqual({ argv: ["sh"], cols: 80, rows: 24, tty: true });
    expect(parseJson(WsStartSchema, '{"argv":["sh"],"tty":false}').ok).toBe(false);
    expect(parseJson(WsControlSchema, '{"resize":{"cols":100,"rows":30}}').ok).toBe(true);
    expect(parseJson(WsControlSchema, '{"signal":"SIGINT"}').ok).toBe(true);
    expect(parseJson(WsControlSchema, '{"signal":"SIGNOPE"}').ok).toBe(false);
  });
});

describe("exit codes", () => {
  test("signals are 128+N", () => {
    expect(exitCodeOf(null, "SIGKILL")).toEqual({ code: 137, signal: "SIGKILL" });
    expect(exitCodeOf(null, "SIGTERM")).toEqual({ code: 143, signal: "SIGTERM" });
    expect(exitCodeOf(3, null)).toEqual({ code: 3 });
    expect(signalNumber("INT")).toBe(2);
    expect(signalNumber("toString")).toBeNull();
  });
  test("spawn failures are 127 and 126", () => {
    expect(spawnErrorExit("x", Object.assign(new Error("ENOENT"), { code: "ENOENT" })).code).toBe(
      127,
    );
    expect(spawnErrorExit("x", Object.assign(new Error("EACCES"), { code: "EACCES" })).code).toBe(
      126,
    );
  });
});

describe("parameters", () => {
  test("paths", () => {
    expect(pathError("/a")).toBeNull();
    expect(pathError(null)).toContain("required");
    expect(pathError("a")).toContain("absolute");
    expect(pathError("/a\0")).toContain("NUL");
  });
  test("mode, mtime, ids", () => {
    expect(parseMode("0644")).toBe(0o644);
    expect(parseMode("4755")).toBe(0o4755);
    expect(parseMode(null)).toBeNull();
    expect(() => parseMode("0999")).toThrow("octal");
    expect(() => parseMode("12345")).toThrow("octal");
    expect(parseMtime("1700000000.5")).toBe(1700000000.5);
    expect(() => parseMtime("-1")).toThrow("mtime");
    expect(parseId("uid", "1000")).toBe(1000);
    expect(() => parseId("uid", "-1")).toThrow("uid");
    expect(formatMode(0o100755)).toBe("0755");
  });
});

describe("errors", () => {
  test("agentError: named after the status (http-N for others, or the name given), the status in detail", () => {
    const e = agentError(403, "client not allowed");
    expect([e.code, e.message, e.detail]).toEqual([
      "agent.forbidden",
      "client not allowed",
      { status: 403 },
    ]);
    expect(agentError(0, "cannot reach").code).toBe("agent.no-answer");
    expect(agentError(404, "x").code).toBe("agent.not-found");
    expect(agentError(418, "x").code).toBe("agent.http-418");
    expect(agentError(200, "x", "protocol")).toMatchObject({
      code: "agent.protocol",
      detail: { status: 200 },
    });
  });
});
