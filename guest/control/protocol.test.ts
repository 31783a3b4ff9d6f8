import { describe, expect, test } from "bun:test";
import { createRing } from "../supervisor/logs.ts";
import {
  boundedLogs,
  type ControlApi,
  handleJsonRpc,
  handleLegacy,
  MAX_BATCH_REPLY,
} from "./protocol.ts";

function fakeApi(lines: string[] = []): ControlApi {
  const no = () => {
    throw new Error("not in this test");
  };
  return {
    list: () => ({ a: "Running" }),
    status: no,
    start: no,
    stop: no,
    restart: async () => no(),
    monitor: no,
    forget: no,
    kill: no,
    shutdown: () => {},
    reboot: () => {},
    create: no,
    remove: no,
    get: () => ({ exec: "x".repeat(100_000) }),
    stats: no,
    logs: () => lines,
    logRing: createRing(10),
  };
}

describe("log commands", () => {
  test("legacy `log` and `log snapshot` stream from the ring; nothing is copied into the reply", async () => {
    const api = fakeApi(["[+] a: never copied"]);
    expect(await handleLegacy(api, "log web")).toMatchObject({
      kind: "stream",
      text: "",
      follow: { name: "web", id: null, history: true, live: true },
    });
    expect(await handleLegacy(api, "log snapshot")).toMatchObject({
      kind: "stream",
      text: "",
      follow: { name: undefined, id: null, history: true, live: false },
    });
    const r = await handleLegacy(api, "log");
    expect(r.kind === "stream" && JSON.parse(r.refused)).toEqual({
      state: "error",
      body: "too many log followers (limit 128); try again later",
    });
  });

  test("stream_subscribeLogs: new lines only, the refusal is a JSON-RPC error with the request id", async () => {
    const r = await handleJsonRpc(
      fakeApi(),
      '{"jsonrpc":"2.0","id":9,"method":"stream_subscribeLogs","params":["web"]}',
      () => ({}),
    );
    if (r?.kind !== "stream") throw new Error("not a stream");
    expect(r.follow).toMatchObject({ name: "web", history: false, live: true });
    expect(JSON.parse(r.text)).toEqual({ jsonrpc: "2.0", id: 9, result: r.follow.id });
    expect(JSON.parse(r.refused)).toMatchObject({ id: 9, error: { code: -32603 } });
  });

  test("stream_currentLogs is bounded: the newest lines, after a line counting the rest", async () => {
    const lines = Array.from({ length: 3000 }, (_, i) => `[+] big: ${i} ${"\u0001".repeat(100)}`);
    const r = await handleJsonRpc(
      fakeApi(lines),
      '{"jsonrpc":"2.0","id":1,"method":"stream_currentLogs"}',
      () => ({}),
    );
    if (r?.kind !== "write") throw new Error("not a write");
    expect(Buffer.byteLength(r.text)).toBeLessThanOrEqual(1024 * 1024);
    const got = JSON.parse(r.text).result as string[];
    expect(got.at(-1)).toBe(lines.at(-1));
    const left = Number(/^\[-\] zinit: (\d+) older lines left out/.exec(got[0] as string)?.[1]);
    expect(left + got.length - 1).toBe(3000);
  });
});

describe("boundedLogs", () => {
  test("everything when it fits; the newest that fit otherwise", () => {
    expect(boundedLogs(["a", "b"], 1000)).toEqual(["a", "b"]);
    const many = Array.from({ length: 100 }, (_, i) => `line ${String(i).padStart(3, "0")}`);
    const out = boundedLogs(many, 400);
    expect(out[0]).toMatch(/^\[-\] zinit: \d+ older lines left out \(reply limit 400 bytes\)$/);
    expect(out.at(-1)).toBe("line 099");
    expect(JSON.stringify(out).length).toBeLessThanOrEqual(400);
  });
});

describe("batches", () => {
  test("answers beyond MAX_BATCH_REPLY: the remaining requests are not run and say so", async () => {
    const n = Math.ceil(MAX_BATCH_REPLY / 100_000) + 5;
    const batch = Array.from({ length: n }, (_, i) => ({
      jsonrpc: "2.0",
      id: i,
      method: "service_get",
      params: ["x"],
    }));
    const r = await handleJsonRpc(fakeApi(), JSON.stringify(batch), () => ({}));
    if (r?.kind !== "write") throw new Error("not a write");
    expect(r.text.length).toBeLessThan(MAX_BATCH_REPLY + 200_000);
    const answers = JSON.parse(r.text) as { id: number; error?: { message: string } }[];
    expect(answers.map((a) => a.id)).toEqual(batch.map((b) => b.id));
    expect(answers.at(-1)?.error?.message).toContain("request not run");
    expect(answers[0]?.error).toBeUndefined();
  });
});
