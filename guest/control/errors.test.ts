import { describe, expect, test } from "bun:test";
import {
  finalError,
  invalidNameError,
  invalidSignalError,
  legacyText,
  rpcErrorObject,
  rustDebug,
  serviceError,
} from "./errors.ts";
import { controlError, RPC } from "./protocol.ts";

describe("rustDebug (zinit 0.2.14's {:?} of a name)", () => {
  test("quoted, with Rust's escapes", () => {
    expect(rustDebug("web")).toBe('"web"');
    expect(rustDebug('a"b\\c')).toBe('"a\\"b\\\\c"');
    expect(rustDebug("a\nb\tc\r\0")).toBe('"a\\nb\\tc\\r\\0"');
    expect(rustDebug("\u001b é'")).toBe('"\\u{1b} é\'"');
  });
});

describe("JSON-RPC error objects (zinit 0.2.28's zinit_err_to_rpc)", () => {
  test("a refusal about a service: '<action>: <text>' and the data object", () => {
    expect(rpcErrorObject(serviceError(RPC.SERVICE_NOT_FOUND, "web"), "getting status")).toEqual({
      code: -32000,
      message: "getting status: service 'web' not found",
      data: {
        code_name: "ServiceNotFound",
        service: "web",
        action: "getting status",
        retryable: false,
        cause_chain: null,
        hint: "Ensure the service is monitored or the name is correct",
      },
    });
    const down = rpcErrorObject(serviceError(RPC.SERVICE_IS_DOWN, "db", "why"), "sending signal");
    expect(down).toMatchObject({
      code: -32003,
      message: "sending signal: service 'db' is down",
      data: { code_name: "ServiceIsDown", retryable: true, cause_chain: ["why"] },
    });
    expect(rpcErrorObject(serviceError(RPC.SHUTTING_DOWN, "x"), "starting service").message).toBe(
      "starting service: system is shutting down",
    );
  });

  test("any other error: -32603 InternalError with the action", () => {
    expect(rpcErrorObject(new Error("boom"), "listing services")).toEqual({
      code: -32603,
      message: "listing services: boom",
      data: {
        code_name: "InternalError",
        service: null,
        action: "listing services",
        retryable: false,
        cause_chain: null,
        hint: "Enable verbose logs and inspect cause_chain for details",
      },
    });
  });

  test("complete errors go out as built; the protocol's own and hero-init's without an action", () => {
    expect(rpcErrorObject(invalidSignalError("9"), "sending signal")).toEqual({
      code: -32004,
      message: "parsing signal: invalid signal '9'",
      data: {
        code_name: "InvalidSignal",
        action: "parsing signal",
        signal: "9",
        hint: "Use a valid POSIX signal like SIGTERM or SIGKILL",
      },
    });
    expect(rpcErrorObject(invalidNameError("monitoring service", "../x"), "x")).toMatchObject({
      code: -32602,
      message: "monitoring service: invalid service name '../x'",
      data: { code_name: "InvalidServiceName", service: "../x" },
    });
    expect(rpcErrorObject(finalError(-32007, "m", { a: 1 }), "y")).toEqual({
      code: -32007,
      message: "m",
      data: { a: 1 },
    });
    expect(rpcErrorObject(controlError(RPC.METHOD_NOT_FOUND, "Method not found"), "z")).toEqual({
      code: -32601,
      message: "Method not found",
    });
    expect(rpcErrorObject(controlError(RPC.CONFIG_ERROR, "no [mycelium]"), undefined)).toEqual({
      code: -32005,
      message: "no [mycelium]",
    });
  });
});

describe("legacy texts (zinit 0.2.14's ZInitError and anyhow texts)", () => {
  test("by code, the name in Rust's Debug", () => {
    const t = (code: number, cmd = "status") => legacyText(serviceError(code, 'a"b'), cmd);
    expect(t(RPC.SERVICE_NOT_FOUND)).toBe('service name "a\\"b" unknown');
    expect(t(RPC.SERVICE_ALREADY_MONITORED, "monitor")).toBe('service "a\\"b" already monitored');
    expect(t(RPC.SERVICE_IS_UP)).toBe('service "a\\"b" is up');
    expect(t(RPC.SERVICE_IS_DOWN)).toBe('service "a\\"b" is down');
    expect(t(RPC.SHUTTING_DOWN)).toBe("zinit is shutting down");
    expect(legacyText(invalidSignalError("NOPE"), "kill")).toBe("EINVAL: Invalid argument");
    expect(t(RPC.SERVICE_NOT_FOUND, "monitor")).toBe("failed to load service config");
    expect(legacyText(new Error("other"), "list")).toBe("other");
  });
});
