import { describe, expect, test } from "bun:test";
import { handleLegacy } from "./legacy.ts";
import type { ControlApi } from "./protocol.ts";

/** An API any use of which fails the test: what the reply needs must not come from it. */
const untouchable = new Proxy({} as ControlApi, {
  get(_, key) {
    throw new Error(`api.${String(key)} was used`);
  },
});

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
    start: () => {
      throw new Error("service web not found");
    },
  };
  return api as ControlApi;
}

describe("log commands", () => {
  test("legacy `log` and `log snapshot` stream from the ring; nothing is copied into the reply", async () => {
    expect(await handleLegacy(untouchable, "log web")).toMatchObject({
      kind: "stream",
      text: "",
      follow: { name: "web", id: null, history: true, live: true },
    });
    expect(await handleLegacy(untouchable, "log snapshot")).toMatchObject({
      kind: "stream",
      text: "",
      follow: { name: undefined, id: null, history: true, live: false },
    });
    const r = await handleLegacy(untouchable, "log");
    expect(r.kind === "stream" && JSON.parse(r.refused)).toEqual({
      state: "error",
      body: "too many log followers (limit 128); try again later",
    });
  });
});

describe("legacy commands", () => {
  test("one state/body line, then the connection closes; kill defaults to SIGTERM", async () => {
    const calls: string[] = [];
    const api = recordingApi(calls);
    expect(await handleLegacy(api, "list")).toEqual({
      kind: "write",
      text: '{"state":"ok","body":{"a":"Running"}}\n',
      close: true,
    });
    expect((await handleLegacy(api, "  kill   web ")).text).toBe('{"state":"ok","body":null}\n');
    expect((await handleLegacy(api, "kill web SIGKILL")).text).toBe('{"state":"ok","body":null}\n');
    expect(calls).toEqual(["list", "kill web SIGTERM", "kill web SIGKILL"]);
  });

  test("errors are state/body lines in zinit's words", async () => {
    const api = recordingApi([]);
    const body = async (line: string) => JSON.parse((await handleLegacy(api, line)).text);
    expect(await body("status")).toEqual({ state: "error", body: "status: missing service name" });
    expect(await body("start web")).toEqual({ state: "error", body: "service web not found" });
    expect(await body("   ")).toEqual({ state: "error", body: "empty command" });
    expect(await body("service_list")).toEqual({
      state: "error",
      body: "unknown command 'service_list'",
    });
  });
});
