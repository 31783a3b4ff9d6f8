import { describe, expect, test } from "bun:test";
import { vendorSourceFile } from "../../test/vendor.ts";
import { METHODS, openrpcDocument, ZINIT_METHODS } from "./methods.ts";

type Doc = {
  openrpc: string;
  info: { title: string };
  methods: {
    name: string;
    description: string;
    params: { name: string; required: boolean; schema: { type: string } }[];
    result: { name: string; schema: object };
    errors?: { code: number }[];
  }[];
};

/**
 * zinit 0.2.28's openrpc.json (methods, parameters, result names, error
 * codes), as read from its source (../shared/vendor/zinit-0.2.28.tar.gz).
 */
const ZINIT_0_2_28: [string, string[], string, number[]][] = [
  ["rpc.discover", [], "OpenRPCSpec", []],
  ["service_list", [], "ServiceList", []],
  ["service_status", ["name"], "ServiceStatus", [-32000]],
  ["service_start", ["name"], "StartResult", [-32000]],
  ["service_stop", ["name"], "StopResult", [-32000, -32003]],
  ["service_monitor", ["name"], "MonitorResult", [-32001, -32005]],
  ["service_forget", ["name"], "ForgetResult", [-32000, -32002]],
  ["service_kill", ["name", "signal"], "KillResult", [-32000, -32003, -32004]],
  ["system_shutdown", [], "ShutdownResult", [-32006]],
  ["system_reboot", [], "RebootResult", [-32006]],
  ["service_create", ["name", "content"], "CreateServiceResult", [-32007, -32008]],
  ["service_delete", ["name"], "DeleteServiceResult", [-32000, -32008]],
  ["service_get", ["name"], "GetServiceResult", [-32000, -32008]],
  ["service_stats", ["name"], "ServiceStats", [-32000, -32003]],
  ["system_start_http_server", ["address"], "StartHttpServerResult", [-32602]],
  ["system_stop_http_server", [], "StopHttpServerResult", [-32602]],
  ["stream_currentLogs", ["name"], "LogsResult", []],
  ["stream_subscribeLogs", ["name"], "LogSubscription", []],
];

describe("the method table and its document", () => {
  test("the document mirrors the table: names in order, each parameter's name, type and requiredness", () => {
    const doc = openrpcDocument() as Doc;
    expect(doc.methods.map((m) => m.name)).toEqual(["rpc.discover", ...METHODS.keys()]);
    for (const m of doc.methods.slice(1)) {
      const row = METHODS.get(m.name);
      expect(m.description.length).toBeGreaterThan(0);
      expect(m.result).toEqual(row?.result as (typeof m)["result"]);
      expect(m.params.map((p) => `${p.name}:${p.schema.type}:${p.required}`)).toEqual(
        row?.params.map((p) => `${p.name}:${p.type}:${p.required}`) ?? [],
      );
    }
    expect(doc.methods.find((m) => m.name === "stream_currentLogs")?.params[0]?.required).toBe(
      false,
    );
  });

  test("zinit 0.2.28's methods first, in its order, with its parameters, result names and codes", () => {
    const doc = openrpcDocument() as Doc;
    expect(doc).toMatchObject({ openrpc: "1.2.6", info: { title: "Zinit JSON-RPC API" } });
    const zinit = doc.methods.slice(0, ZINIT_0_2_28.length);
    expect(zinit.map((m) => m.name)).toEqual(ZINIT_0_2_28.map(([n]) => n));
    expect(ZINIT_METHODS).toEqual(ZINIT_0_2_28.map(([n]) => n));
    for (const [name, params, result, codes] of ZINIT_0_2_28) {
      const m = zinit.find((x) => x.name === name);
      expect({ name, params: m?.params.map((p) => p.name), result: m?.result.name }).toEqual({
        name,
        params,
        result,
      });
      // Every code zinit documents is documented here too (hero-init may list more).
      const mine = (m?.errors ?? []).map((e) => e.code);
      expect({ name, missing: codes.filter((c) => !mine.includes(c)) }).toEqual({
        name,
        missing: [],
      });
    }
  });

  test("hero-init's own methods follow zinit's", () => {
    expect([...METHODS.keys()].slice(ZINIT_0_2_28.length - 1)).toEqual([
      "service_restart",
      "stream_unsubscribeLogs",
      "mycelium_status",
      "mycelium_peers",
      "mycelium_addPeer",
      "mycelium_removePeer",
      "update_check",
      "update_apply",
    ]);
  });

  test("zinit's openrpc.json in the vendored source lists the same", () => {
    const theirs = JSON.parse(
      vendorSourceFile("zinit-0.2.28.tar.gz", "zinit-0.2.28/openrpc.json"),
    ) as Doc;
    expect(
      theirs.methods.map((m) => [
        m.name,
        m.params.map((p) => p.name),
        m.result.name,
        (m.errors ?? []).map((e) => e.code),
      ]),
    ).toEqual(ZINIT_0_2_28);
  });
});
