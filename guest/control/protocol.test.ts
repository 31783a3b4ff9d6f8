import { describe, expect, test } from "bun:test";
import { boundedLogs, controlError, RPC } from "./protocol.ts";

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

describe("controlError", () => {
  test("named after its RPC code, the number in detail; an unknown code is control.other", () => {
    const e = controlError(RPC.SERVICE_NOT_FOUND, "service 'x' not found");
    expect([e.code, e.message, e.detail]).toEqual([
      "control.service-not-found",
      "service 'x' not found",
      { rpcCode: -32000 },
    ]);
    expect(controlError(RPC.METHOD_NOT_FOUND, "m").code).toBe("control.method-not-found");
    expect(controlError(RPC.INVALID_PARAMS, "m").code).toBe("control.invalid-params");
    expect(controlError(-32099, "m")).toMatchObject({
      code: "control.other",
      detail: { rpcCode: -32099 },
    });
  });
});
