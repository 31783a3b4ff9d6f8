import { describe, expect, test } from "bun:test";
import { type HeroError, isHeroError } from "../../lib/errors.ts";
import { METHODS, openrpcDocument, readParam } from "./methods.ts";

const NAME = { type: "string", required: true, description: "" } as const;
const OPTIONAL = { type: "string", required: false, description: "" } as const;
const CONTENT = { type: "object", required: true, description: "" } as const;

/** The RPC code and message of the control error `f` throws (and that it is one). */
function refusal(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(isHeroError(e, "control")).toBe(true);
    return `${(e as HeroError).detail.rpcCode} ${(e as Error).message}`;
  }
  throw new Error("no error");
}

describe("readParam", () => {
  test("by position in an array, by name in an object, nothing in anything else", () => {
    expect(readParam(["web", "SIGHUP"], 1, "signal", NAME)).toBe("SIGHUP");
    expect(readParam({ name: "web" }, 0, "name", NAME)).toBe("web");
    expect(readParam("web", 0, "name", OPTIONAL)).toBeUndefined();
    expect(readParam(null, 0, "name", OPTIONAL)).toBeUndefined();
    expect(readParam([null], 0, "name", OPTIONAL)).toBeUndefined();
  });

  test("zinit's error texts, code -32602", () => {
    expect(refusal(() => readParam([], 0, "name", NAME))).toBe('-32602 missing parameter "name"');
    expect(refusal(() => readParam([1], 0, "name", OPTIONAL))).toBe(
      '-32602 parameter "name" must be a string',
    );
    for (const bad of [undefined, "x", [1], null])
      expect(refusal(() => readParam(["n", bad], 1, "content", CONTENT))).toBe(
        '-32602 parameter "content" must be an object',
      );
    expect(readParam(["n", { exec: "x" }], 1, "content", CONTENT)).toEqual({ exec: "x" });
  });
});

describe("the method table", () => {
  test("the document mirrors the table: names in order, each parameter's name, type and requiredness", () => {
    const doc = openrpcDocument() as {
      methods: {
        name: string;
        description: string;
        params: { name: string; required: boolean; schema: { type: string } }[];
        result: { name: string; schema: object };
      }[];
    };
    expect(doc.methods.map((m) => m.name)).toEqual([...METHODS.keys()]);
    for (const m of doc.methods) {
      const row = METHODS.get(m.name);
      expect(m.description.length).toBeGreaterThan(0);
      expect(m.result).toEqual(row?.result as (typeof m)["result"]);
      expect(m.params.map((p) => `${p.name}:${p.schema.type}:${p.required}`)).toEqual(
        row?.params.map((p) => `${p.name}:${p.type}:${p.required}`) ?? [],
      );
    }
    expect(doc.methods.find((m) => m.name === "service_kill")?.params.map((p) => p.name)).toEqual([
      "name",
      "signal",
    ]);
    expect(doc.methods.find((m) => m.name === "stream_currentLogs")?.params[0]?.required).toBe(
      false,
    );
  });

  test("the method names, in the order rpc.discover has always listed them", () => {
    expect([...METHODS.keys()]).toEqual([
      "service_list",
      "service_status",
      "service_start",
      "service_stop",
      "service_restart",
      "service_monitor",
      "service_forget",
      "service_kill",
      "system_shutdown",
      "system_reboot",
      "service_create",
      "service_delete",
      "service_get",
      "service_stats",
      "stream_currentLogs",
      "stream_subscribeLogs",
      "mycelium_status",
      "mycelium_peers",
      "mycelium_addPeer",
      "mycelium_removePeer",
      "update_check",
      "update_apply",
    ]);
  });
});
