import { describe, expect, test } from "bun:test";
import { createRing } from "../supervisor/logs.ts";
import { serviceError } from "./errors.ts";
import { commandWords, handleLegacy } from "./legacy.ts";
import { type ControlApi, RPC } from "./protocol.ts";

/** An API that records the calls of the legacy commands (only those the tests send). */
function recordingApi(calls: string[]): ControlApi {
  const rec =
    (name: string, result: unknown = null) =>
    (...args: unknown[]) => {
      calls.push([name, ...args].join(" "));
      return result as never;
    };
  const api: Partial<ControlApi> = {
    list: rec("list", { a: "Running" }),
    kill: rec("kill"),
    logRing: createRing(10),
    // Only "web" is monitored; the rest is zinit's unknown service.
    status: (n: string) => {
      if (n !== "web") throw serviceError(RPC.SERVICE_NOT_FOUND, n);
      return { name: n };
    },
    start: (n: string) => {
      throw serviceError(RPC.SERVICE_NOT_FOUND, n);
    },
    forget: (n: string) => {
      throw serviceError(RPC.SERVICE_IS_UP, n, "hero-init's own words");
    },
    monitor: (n: string) => {
      throw serviceError(RPC.SERVICE_NOT_FOUND, n);
    },
  };
  return api as ControlApi;
}

const body = async (api: ControlApi, line: string) => {
  const r = await handleLegacy(api, line);
  if (r.kind !== "write") throw new Error("not a write");
  return JSON.parse(r.text) as { state: string; body: unknown };
};

describe("commandWords (zinit's shlex split)", () => {
  test("blanks, quotes, escapes, comments, line joins", () => {
    expect(commandWords("  kill   web SIGKILL ")).toEqual(["kill", "web", "SIGKILL"]);
    expect(commandWords(`status 'my svc'`)).toEqual(["status", "my svc"]);
    expect(commandWords(`status "a\\"b\\x"`)).toEqual(["status", 'a"b\\x']);
    expect(commandWords("status a\\ b")).toEqual(["status", "a b"]);
    expect(commandWords("status we\\\nb")).toEqual(["status", "web"]);
    expect(commandWords("status web # a comment")).toEqual(["status", "web"]);
    expect(commandWords("#list")).toEqual([]);
    expect(commandWords("a#b")).toEqual(["a#b"]);
    expect(commandWords("")).toEqual([]);
  });

  test("an unbalanced quote or a trailing backslash is no command", () => {
    for (const bad of [`status "web`, "status 'web", "status web\\"])
      expect(commandWords(bad)).toBeNull();
  });
});

describe("log commands", () => {
  test("`log` and `log snapshot` stream from the ring; nothing is copied into the reply", async () => {
    const api = recordingApi([]);
    expect(await handleLegacy(api, "log")).toMatchObject({
      kind: "stream",
      text: "",
      follow: { name: undefined, id: null, history: true, live: true },
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

  test("hero-init's `log NAME` (any service, maybe not yet there), `log snapshot NAME` (a known one); anything else is zinit's error", async () => {
    const api = recordingApi([]);
    expect(await handleLegacy(api, "log later")).toMatchObject({
      kind: "stream",
      follow: { name: "later", live: true },
    });
    expect(await handleLegacy(api, "log web")).toMatchObject({
      kind: "stream",
      follow: { name: "web", history: true, live: true },
    });
    expect(await handleLegacy(api, "log snapshot web")).toMatchObject({
      kind: "stream",
      follow: { name: "web", history: true, live: false },
    });
    for (const line of ["log snapshot extra", "log ../x", "log snapshot web more", "log a b"])
      expect(await body(api, line)).toEqual({
        state: "error",
        body: "invalid log command arguments",
      });
  });
});

describe("legacy commands", () => {
  test("one state/body line, then the connection closes; kill takes its signal", async () => {
    const calls: string[] = [];
    const api = recordingApi(calls);
    expect(await handleLegacy(api, "list")).toEqual({
      kind: "write",
      text: '{"state":"ok","body":{"a":"Running"}}\n',
      close: true,
    });
    // zinit ignores what follows list, shutdown and reboot.
    expect((await handleLegacy(api, "list extra")).text).toBe(
      '{"state":"ok","body":{"a":"Running"}}\n',
    );
    expect((await handleLegacy(api, "kill web SIGKILL")).text).toBe('{"state":"ok","body":null}\n');
    expect(calls).toEqual(["list", "list", "kill web SIGKILL"]);
  });

  test("zinit's argument counts: a wrong one runs nothing", async () => {
    const calls: string[] = [];
    const api = recordingApi(calls);
    for (const [line, cmd] of [
      ["kill web", "kill"],
      ["kill", "kill"],
      ["kill web SIGTERM extra", "kill"],
      ["status", "status"],
      ["status web extra", "status"],
      ["start", "start"],
      ["service_list", "service_list"],
      ["__proto__ x", "__proto__"],
    ])
      expect(await body(api, line as string)).toEqual({
        state: "error",
        body: `unknown command '${cmd}' or wrong arguments count`,
      });
    expect(calls).toEqual([]);
  });

  test("zinit's error texts", async () => {
    const api = recordingApi([]);
    expect(await body(api, "start nope")).toEqual({
      state: "error",
      body: 'service name "nope" unknown',
    });
    expect(await body(api, 'start "a\\"b"')).toEqual({
      state: "error",
      body: 'service name "a\\"b" unknown',
    });
    expect(await body(api, "forget web")).toEqual({ state: "error", body: 'service "web" is up' });
    expect(await body(api, "monitor nope")).toEqual({
      state: "error",
      body: "failed to load service config",
    });
    expect(await body(api, "   ")).toEqual({ state: "error", body: "unknown command" });
    expect(await body(api, "")).toEqual({ state: "error", body: "unknown command" });
    expect(await body(api, `status "web`)).toEqual({
      state: "error",
      body: "invalid command syntax",
    });
  });
});
