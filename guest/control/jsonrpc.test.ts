import { describe, expect, test } from "bun:test";
import { myceliumAdmin } from "../mycelium/admin.ts";
import { createRing } from "../supervisor/logs.ts";
import { serviceError } from "./errors.ts";
import { handleJsonRpc } from "./jsonrpc.ts";
import { methodNotFound, openrpcDocument } from "./methods.ts";
import { type ControlApi, MAX_BATCH_REPLY, RPC } from "./protocol.ts";

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

/** An API on which every method succeeds, with the real mycelium delegate and an updater's. */
function workingApi(calls: string[] = []): ControlApi {
  const rec =
    (name: string, result: unknown = null) =>
    (...args: unknown[]) => {
      calls.push(`${name}(${args.map((a) => JSON.stringify(a)).join(", ")})`);
      return result as never;
    };
  return {
    list: rec("list", {}),
    status: rec("status", {}),
    start: rec("start"),
    stop: rec("stop"),
    restart: async (n) => rec("restart")(n),
    monitor: rec("monitor"),
    forget: rec("forget"),
    kill: rec("kill"),
    shutdown: rec("shutdown"),
    reboot: rec("reboot"),
    create: rec("create", "created"),
    remove: rec("remove", "deleted"),
    get: rec("get", {}),
    stats: rec("stats", {}),
    logs: () => [],
    logRing: createRing(10),
    mycelium: myceliumAdmin(null, () => null),
    // Like updater.ts's updateControl: its two methods, "Method not found" for any other.
    update: async (method) => {
      if (method === "update_check" || method === "update_apply") return { outcome: "unchanged" };
      throw methodNotFound(method);
    },
  };
}

/** The JSON-RPC answer to one request (for a subscription: its first line). */
async function ask(api: ControlApi, method: string, params?: unknown, discover?: () => unknown) {
  const req = { jsonrpc: "2.0", id: 1, method, ...(params === undefined ? {} : { params }) };
  const r = await handleJsonRpc(api, JSON.stringify(req), discover);
  if (!r) throw new Error(`${method}: no answer`);
  return JSON.parse(r.text) as {
    result?: unknown;
    error?: { code: number; message: string; data?: unknown };
  };
}

type Doc = {
  methods: { name: string; params: { name: string; schema: { type: string } }[] }[];
};

describe("the OpenRPC document and the dispatcher", () => {
  test("rpc.discover answers the document made from the method table, as JSON text (zinit's)", async () => {
    const r = await ask(fakeApi(), "rpc.discover");
    expect(typeof r.result).toBe("string");
    expect(JSON.parse(r.result as string)).toEqual(JSON.parse(JSON.stringify(openrpcDocument())));
    expect(JSON.parse(r.result as string)).toMatchObject({ openrpc: "1.2.6" });
    // A caller's own document (tests) wins.
    expect((await ask(fakeApi(), "rpc.discover", [], () => ({ mine: 1 }))).result).toBe(
      '{"mine":1}',
    );
  });

  test("the document lists exactly the methods the dispatcher accepts (rpc.discover aside)", async () => {
    const doc = openrpcDocument() as Doc;
    const listed = doc.methods.map((m) => m.name).filter((n) => n !== "rpc.discover");
    const probes = [
      ...listed,
      "rpc.discover",
      "rpc.other",
      "service_bogus",
      "mycelium_bogus",
      "update_bogus",
      "list",
      "status",
      "log",
      "constructor",
      "__proto__",
      "toString",
      "",
    ];
    const accepted: string[] = [];
    for (const name of probes) {
      const m = doc.methods.find((x) => x.name === name);
      const params = m?.params.map((p) =>
        p.schema.type === "object" ? { exec: "x" } : "tcp://h:1",
      );
      const r = await ask(workingApi(), name, params ?? []);
      if (r.error?.code !== RPC.METHOD_NOT_FOUND) accepted.push(name);
    }
    expect(accepted.sort()).toEqual([...listed, "rpc.discover"].sort());
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed).toContain("service_list");
    expect(listed).toContain("update_apply");
  });

  test("without mycelium or an updater their methods are not found, in the usual words", async () => {
    const r = await ask(fakeApi(), "mycelium_status");
    expect(r.error).toEqual({ code: -32601, message: "Method not found" });
    expect((await ask(fakeApi(), "update_check")).error?.code).toBe(-32601);
  });
});

describe("parameters", () => {
  test("by position or by name; actions answer null", async () => {
    const calls: string[] = [];
    const api = workingApi(calls);
    expect(await ask(api, "service_kill", ["web", "SIGHUP"])).toMatchObject({ result: null });
    expect(await ask(api, "service_kill", { signal: "SIGINT", name: "db" })).toMatchObject({
      result: null,
    });
    expect(await ask(api, "service_create", ["new", { exec: "x" }])).toMatchObject({
      result: "created",
    });
    expect(calls).toEqual([
      'kill("web", "SIGHUP")',
      'kill("db", "SIGINT")',
      'create("new", {"exec":"x"})',
    ]);
  });

  test("zinit's (jsonrpsee's) error texts: every parameter read in order before the method runs", async () => {
    const calls: string[] = [];
    const api = workingApi(calls);
    const err = async (method: string, params: unknown) => (await ask(api, method, params)).error;
    const invalid = (data: string) => ({ code: -32602, message: "Invalid params", data });
    expect(await err("service_status", [])).toEqual(invalid("No more params"));
    expect(await err("service_status", [5])).toEqual(
      invalid("invalid type: integer `5`, expected a string at line 1 column 1"),
    );
    expect(await err("service_kill", ["web"])).toEqual(invalid("No more params"));
    expect(await err("service_create", [])).toEqual(invalid("No more params"));
    expect(await err("service_create", ["x", "y"])).toEqual(
      invalid('invalid type: string "y", expected a map at line 1 column 3'),
    );
    expect(await err("service_status", {})).toEqual(
      invalid("missing field `name` at line 1 column 2"),
    );
    expect(await err("stream_currentLogs", [7])).toEqual(
      invalid("invalid type: integer `7`, expected a string at line 1 column 1"),
    );
    expect(calls).toEqual([]);
  });
});

describe("the envelope", () => {
  test("notifications get no answer; errors carry the request's id", async () => {
    const api = workingApi();
    expect(
      await handleJsonRpc(api, '{"jsonrpc":"2.0","method":"service_stop","params":[]}'),
    ).toBeNull();
    expect(await handleJsonRpc(api, "{nope")).toEqual({
      kind: "write",
      text: '{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}\n',
      close: false,
    });
    const r = await handleJsonRpc(api, '{"jsonrpc":"2.0","id":"x","method":"nope"}');
    expect(r?.kind === "write" && r.text).toBe(
      '{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"Method not found"}}\n',
    );
    expect(await handleJsonRpc(api, "[]")).toMatchObject({
      text: '{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}\n',
    });
    for (const bad of [
      '{"jsonrpc":"1.0","id":3,"method":"x"}',
      '{"id":3}',
      '{"jsonrpc":"2.0","id":{},"method":"service_list"}',
    ])
      expect(JSON.parse(((await handleJsonRpc(api, bad)) as { text: string }).text).error).toEqual({
        code: -32600,
        message: "Invalid request",
      });
  });
});

describe("log commands", () => {
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

describe("zinit 0.2.28's replies", () => {
  test("a refusal: '<action>: <text>' and zinit's data object", async () => {
    const api = workingApi();
    api.stats = async (n) => {
      throw serviceError(RPC.SERVICE_IS_DOWN, n);
    };
    expect((await ask(api, "service_stats", ["web"])).error).toEqual({
      code: -32003,
      message: "collecting stats: service 'web' is down",
      data: {
        code_name: "ServiceIsDown",
        service: "web",
        action: "collecting stats",
        retryable: true,
        cause_chain: null,
        hint: "Service is down; start it before sending signals or requesting stats",
      },
    });
  });

  test("system_start_http_server is refused (hero-init opens no HTTP copy); stop: none is running", async () => {
    const api = workingApi();
    const start = (await ask(api, "system_start_http_server", ["127.0.0.1:8080"])).error;
    expect(start).toMatchObject({ code: -32603, data: { action: "starting http server" } });
    expect(start?.message).toStartWith("starting http server: not provided by hero-init");
    expect((await ask(api, "system_stop_http_server")).error).toMatchObject({
      code: -32603,
      message: "stopping http server: No HTTP/RPC server is currently running",
    });
  });

  test("stream_unsubscribeLogs ends the connection's subscription: true once, then false", async () => {
    const mine = new Set([7]);
    const session = { unsubscribe: (id: number) => mine.delete(id) };
    const unsub = async (params: unknown) => {
      const req = { jsonrpc: "2.0", id: 3, method: "stream_unsubscribeLogs", params };
      const r = await handleJsonRpc(workingApi(), JSON.stringify(req), undefined, session);
      return JSON.parse((r as { text: string }).text).result;
    };
    expect(await unsub([7])).toBe(true);
    expect(await unsub([7])).toBe(false);
    expect(await unsub(["x"])).toBe(false);
    expect(await unsub([])).toBe(false);
  });

  test("stream_subscribeLogs takes its filter as zinit's server names it too", async () => {
    for (const params of [["web"], { name: "web" }, { filter: "web" }]) {
      const req = { jsonrpc: "2.0", id: 1, method: "stream_subscribeLogs", params };
      const r = await handleJsonRpc(fakeApi(), JSON.stringify(req));
      expect(r).toMatchObject({ kind: "stream", follow: { name: "web" } });
    }
  });
});
