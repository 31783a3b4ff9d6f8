/**
 * zinit drop-in, the JSON-RPC side: a client that frames requests as
 * zinit's own (reth-ipc over jsonrpsee) does — no newline after a request,
 * requests back to back, replies found by bracket matching — against
 * hero-init (PID 1 of a pid namespace, `zinit -s SOCK init -c DIR`), for
 * every method of zinit 0.2.28's openrpc.json: result shapes, error codes,
 * messages and data as zinit 0.2.28's source (src/app/rpc.rs, jsonrpsee
 * 0.25) produces them. hero-init's deliberate differences are named where
 * they are checked (docs/services.md).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Socket } from "bun";
import { type Daemon, removeCliDir, startDaemon, waitFor } from "../helpers/zinit-pair.ts";
import { vendorSourceFile } from "../vendor.ts";

setDefaultTimeout(60_000);

const SERVICES = {
  web: `exec: sh -c "echo hi; exec sleep 1000"\n`,
  once: `exec: sh -c "echo once"\noneshot: true\n`,
  dep: "exec: sleep 1001\nafter: [web]\n",
  tree: `exec: sh -c "sleep 1004 & exec sleep 1005"\n`,
};

/** Pure: the whole JSON texts at the start of `buf` (brackets balanced outside strings), and the rest. */
function bracketed(buf: string): { messages: string[]; rest: string } {
  const messages: string[] = [];
  let depth = 0;
  let inStr = false;
  let esc = false;
  let start = -1;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (inStr) {
      if (esc) esc = false;
      else if (c === "\\") esc = true;
      else if (c === '"') inStr = false;
    } else if (c === '"') inStr = true;
    else if (c === "{" || c === "[") {
      if (depth++ === 0) start = i;
    } else if ((c === "}" || c === "]") && --depth === 0) {
      messages.push(buf.slice(start, i + 1));
      buf = buf.slice(i + 1);
      i = -1;
    }
  }
  return { messages, rest: depth > 0 ? buf.slice(start) : "" };
}

type Reply = {
  id?: number | string | null;
  result?: unknown;
  error?: { code: number; message: string; data?: unknown };
  method?: string;
  params?: { subscription: number; result: string };
};

/** A JSON-RPC client framed as zinit's (reth-ipc): requests without a newline, replies by brackets. */
class RethClient {
  private buf = "";
  private got: Reply[] = [];
  private nextId = 1;
  private constructor(private sock: Socket<undefined>) {}

  static async open(path: string): Promise<RethClient> {
    let self: RethClient | undefined;
    const sock = await Bun.connect({
      unix: path,
      socket: {
        data(_s, d) {
          if (!self) return;
          const r = bracketed(self.buf + d.toString());
          self.buf = r.rest;
          for (const m of r.messages) self.got.push(JSON.parse(m));
        },
      },
    });
    self = new RethClient(sock);
    return self;
  }

  /** Writes raw text, as is. */
  write(text: string): void {
    this.sock.write(text);
  }

  /** The request's text (what jsonrpsee's client sends) and its id. */
  request(method: string, params?: unknown): { text: string; id: number } {
    const id = this.nextId++;
    const req =
      params === undefined
        ? { jsonrpc: "2.0", id, method }
        : { jsonrpc: "2.0", id, method, params };
    return { text: JSON.stringify(req), id };
  }

  /** The reply to request `id` (or the first message `pick` takes). */
  async reply(pick: (r: Reply) => boolean): Promise<Reply> {
    return waitFor(
      () => {
        const i = this.got.findIndex(pick);
        return i < 0 ? undefined : this.got.splice(i, 1)[0];
      },
      "a reply",
      10_000,
    );
  }

  async call(method: string, params?: unknown): Promise<Reply> {
    const { text, id } = this.request(method, params);
    this.write(text);
    return this.reply((r) => r.id === id);
  }

  close(): void {
    this.sock.end();
  }
}

/** zinit 0.2.28's data object of a refusal about a service (zinit_err_to_rpc). */
const zinitData = (
  codeName: string,
  service: string | null,
  action: string,
  hint: string,
  retryable = false,
) => ({
  code_name: codeName,
  service,
  action,
  retryable,
  cause_chain: null,
  hint,
});
const HINT_NOT_FOUND = "Ensure the service is monitored or the name is correct";

let hero: Daemon;
let c: RethClient;

beforeAll(async () => {
  hero = await startDaemon("hero", SERVICES);
  c = await RethClient.open(hero.sock);
  await waitFor(async () => {
    const r = (await c.call("service_list")).result as Record<string, string>;
    return (
      r.web === "Running" && r.dep === "Running" && r.once === "Success" && r.tree === "Running"
    );
  }, "services up");
});
afterAll(async () => {
  c?.close();
  await hero?.stop();
  removeCliDir();
});

describe("framing as zinit's client does it", () => {
  test("no newline, back to back in one write, split across writes: each request answered", async () => {
    const a = c.request("service_list");
    const b = c.request("service_status", ["web"]);
    c.write(a.text + b.text);
    expect((await c.reply((r) => r.id === a.id)).result).toMatchObject({ web: "Running" });
    expect((await c.reply((r) => r.id === b.id)).result).toMatchObject({ name: "web" });
    const d = c.request("service_status", ["dep"]);
    c.write(d.text.slice(0, 10));
    await Bun.sleep(50);
    c.write(d.text.slice(10));
    expect((await c.reply((r) => r.id === d.id)).result).toMatchObject({ name: "dep" });
  });

  test("jsonrpsee's protocol errors: parse error, invalid request, method not found", async () => {
    c.write("{nope}");
    expect(await c.reply((r) => r.error?.code === -32700)).toEqual({
      jsonrpc: "2.0",
      id: null,
      error: { code: -32700, message: "Parse error" },
    } as Reply);
    c.write('{"jsonrpc":"1.0","id":77,"method":"service_list"}');
    expect((await c.reply((r) => r.id === 77)).error).toEqual({
      code: -32600,
      message: "Invalid request",
    });
    expect((await c.call("no_such_method")).error).toEqual({
      code: -32601,
      message: "Method not found",
    });
    c.write("[]");
    expect((await c.reply((r) => r.error?.code === -32600)).error?.message).toBe("Invalid request");
  });
});

describe("every method of zinit 0.2.28's openrpc.json", () => {
  test("rpc.discover: the document as a JSON string, zinit's methods first, hero-init's after", async () => {
    const r = await c.call("rpc.discover");
    expect(typeof r.result).toBe("string");
    const doc = JSON.parse(r.result as string) as { openrpc: string; methods: { name: string }[] };
    const theirs = JSON.parse(
      vendorSourceFile("zinit-0.2.28.tar.gz", "zinit-0.2.28/openrpc.json"),
    ) as typeof doc;
    expect(doc.openrpc).toBe(theirs.openrpc);
    const names = theirs.methods.map((m) => m.name);
    expect(doc.methods.slice(0, names.length).map((m) => m.name)).toEqual(names);
    expect(doc.methods.map((m) => m.name)).toContain("service_restart");
  });

  test("service_list and service_status: zinit's shapes; an unknown service", async () => {
    const list = (await c.call("service_list")).result as Record<string, unknown>;
    expect(Object.values(list).every((v) => typeof v === "string")).toBe(true);
    const st = (await c.call("service_status", ["dep"])).result;
    expect(st).toEqual({
      name: "dep",
      pid: expect.any(Number),
      state: "Running",
      target: "Up",
      after: { web: "Running" },
    });
    expect((await c.call("service_status", { name: "nope" })).error).toEqual({
      code: -32000,
      message: "getting status: service 'nope' not found",
      data: zinitData("ServiceNotFound", "nope", "getting status", HINT_NOT_FOUND),
    });
    expect((await c.call("service_status", [])).error).toEqual({
      code: -32602,
      message: "Invalid params",
      data: "No more params",
    });
  });

  test("service_stop, service_start (null; not found)", async () => {
    expect(await c.call("service_stop", ["dep"])).toMatchObject({ result: null });
    expect((await c.call("service_stop", ["nope"])).error).toMatchObject({
      code: -32000,
      message: "stopping service: service 'nope' not found",
    });
    expect(await c.call("service_start", ["dep"])).toMatchObject({ result: null });
    expect((await c.call("service_start", ["nope"])).error).toMatchObject({
      code: -32000,
      message: "starting service: service 'nope' not found",
    });
  });

  test("service_kill: zinit's codes for a bad or numeric signal, a down or unknown service", async () => {
    const sig = (await c.call("service_kill", ["web", "SIGNOPE"])).error;
    expect(sig).toEqual({
      code: -32004,
      message: "parsing signal: invalid signal 'SIGNOPE'",
      data: {
        code_name: "InvalidSignal",
        action: "parsing signal",
        signal: "SIGNOPE",
        hint: "Use a valid POSIX signal like SIGTERM or SIGKILL",
      },
    });
    expect((await c.call("service_kill", ["web", "9"])).error?.code).toBe(-32004);
    expect((await c.call("service_kill", ["nope", "SIGTERM"])).error).toMatchObject({
      code: -32000,
      message: "sending signal: service 'nope' not found",
    });
    expect((await c.call("service_kill", ["once", "SIGTERM"])).error).toEqual({
      code: -32003,
      message: "sending signal: service 'once' is down",
      data: zinitData(
        "ServiceIsDown",
        "once",
        "sending signal",
        "Service is down; start it before sending signals or requesting stats",
        true,
      ),
    });
    expect(await c.call("service_kill", ["dep", "sighup"])).toMatchObject({ result: null });
  });

  test("service_monitor and service_forget", async () => {
    expect((await c.call("service_monitor", ["web"])).error).toMatchObject({
      code: -32001,
      message: "monitoring service: service 'web' already monitored",
      data: { code_name: "ServiceAlreadyMonitored", retryable: true },
    });
    expect((await c.call("service_monitor", ["nope"])).error).toMatchObject({
      code: -32005,
      message: "monitoring service: failed to load 'nope.yaml'",
      data: {
        code_name: "ConfigError",
        action: "loading service config",
        service: "nope",
        hint: "Verify the YAML file exists and is valid",
      },
    });
    expect((await c.call("service_monitor", ["../x"])).error).toEqual({
      code: -32602,
      message: "monitoring service: invalid service name '../x'",
      data: {
        code_name: "InvalidServiceName",
        action: "monitoring service",
        service: "../x",
        hint: "Name must not contain '/', '\\\\' or '.'",
      },
    });
    expect((await c.call("service_forget", ["web"])).error).toMatchObject({
      code: -32002,
      message: "forgetting service: service 'web' is up",
      data: {
        code_name: "ServiceIsUp",
        hint: "Service is already up; use service_stop or restart",
      },
    });
    expect((await c.call("service_forget", ["nope"])).error?.code).toBe(-32000);
  });

  test("service_create, service_get, service_delete", async () => {
    expect((await c.call("service_create", ["made", { exec: "sleep 1003" }])).result).toBe(
      "Service 'made' created successfully",
    );
    expect(existsSync(join(hero.dir, "etc", "made.yaml"))).toBe(true);
    expect((await c.call("service_create", ["made", { exec: "x" }])).error).toEqual({
      code: -32007,
      message: "creating service: Service 'made' already exists",
      data: {
        code_name: "ServiceAlreadyExists",
        action: "creating service file",
        service: "made",
        hint: "Use a different name or delete the existing service first",
      },
    });
    expect((await c.call("service_create", ["a/b", { exec: "x" }])).error?.code).toBe(-32602);
    expect((await c.call("service_get", ["made"])).result).toEqual({ exec: "sleep 1003" });
    expect((await c.call("service_get", ["nope"])).error).toMatchObject({
      code: -32000,
      message: "getting service: Service 'nope' not found",
      data: { code_name: "ServiceNotFound", action: "reading service file", service: "nope" },
    });
    expect((await c.call("service_delete", ["made"])).result).toBe(
      "Service 'made' deleted successfully",
    );
    expect((await c.call("service_delete", ["made"])).error).toMatchObject({
      code: -32000,
      message: "deleting service: Service 'made' not found",
    });
  });

  test("service_stats: RSS bytes, CPU percent, the other processes; a down service is -32003", async () => {
    const r = (await c.call("service_stats", ["web"])).result as Record<string, unknown>;
    expect(r).toEqual({
      name: "web",
      pid: expect.any(Number),
      memory_usage: expect.any(Number),
      cpu_usage: expect.any(Number),
      children: [],
    });
    expect(r.memory_usage as number).toBeGreaterThan(100_000);
    // Each child: zinit's fields (the main process's descendants).
    const tree = await waitFor(async () => {
      const t = (await c.call("service_stats", ["tree"])).result as { children: unknown[] };
      return t.children.length === 1 ? t : undefined;
    }, "tree's child");
    expect(tree.children).toEqual([
      { pid: expect.any(Number), memory_usage: expect.any(Number), cpu_usage: expect.any(Number) },
    ]);
    expect((await c.call("service_stats", ["once"])).error).toMatchObject({
      code: -32003,
      message: "collecting stats: service 'once' is down",
    });
    expect((await c.call("service_stats", ["nope"])).error?.code).toBe(-32000);
  });

  test("system_start_http_server refused (deliberate), system_stop_http_server as zinit with none running", async () => {
    const start = (await c.call("system_start_http_server", ["127.0.0.1:8080"])).error;
    expect(start?.code).toBe(-32603);
    expect(start?.message).toStartWith("starting http server: ");
    expect((await c.call("system_stop_http_server")).error).toEqual({
      code: -32603,
      message: "stopping http server: No HTTP/RPC server is currently running",
      data: zinitData(
        "InternalError",
        null,
        "stopping http server",
        "Enable verbose logs and inspect cause_chain for details",
      ),
    });
  });

  test("stream_currentLogs, stream_subscribeLogs, stream_unsubscribeLogs", async () => {
    const all = (await c.call("stream_currentLogs")).result as string[];
    expect(all).toContain("[+] once: once");
    expect(all).toContain("[-] once: ------------ [start] ------------");
    const web = (await c.call("stream_currentLogs", ["web"])).result as string[];
    expect(web.length).toBeGreaterThan(0);
    expect(web.every((l) => l.slice(4).startsWith("web:"))).toBe(true);
    const sub = await c.call("stream_subscribeLogs", ["once"]);
    expect(typeof sub.result).toBe("number");
    expect(await c.call("service_start", ["once"])).toMatchObject({ result: null });
    // zinit's start marker first (on stderr), then the run's line.
    for (const result of ["[-] once: ------------ [start] ------------", "[+] once: once"]) {
      const note = await c.reply((r) => r.method === "stream_subscribeLogs");
      expect(note).toEqual({
        jsonrpc: "2.0",
        method: "stream_subscribeLogs",
        params: { subscription: sub.result as number, result },
      } as Reply);
    }
    expect((await c.call("stream_unsubscribeLogs", [sub.result])).result).toBe(true);
    expect((await c.call("stream_unsubscribeLogs", [sub.result])).result).toBe(false);
  });

  test("system_reboot and system_shutdown: null, and the daemon ends", async () => {
    expect(await c.call("system_reboot")).toMatchObject({ result: null });
    await hero.proc.exited;
    const other = await startDaemon("hero", { web: SERVICES.web });
    const c2 = await RethClient.open(other.sock);
    try {
      expect(await c2.call("system_shutdown")).toMatchObject({ result: null });
      await other.proc.exited;
    } finally {
      c2.close();
      await other.stop();
    }
  });
});
