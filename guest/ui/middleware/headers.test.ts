import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { UiApp } from "../http.ts";
import { internalError } from "../internal-error.ts";
import { SECURITY_HEADERS, securityHeaders } from "./headers.ts";

function app() {
  const a = new Hono<UiApp>();
  a.use(securityHeaders());
  a.get("/ok", (c) => c.text("ok"));
  a.get("/refused", (c) => c.json({ error: "no" }, 403));
  a.get("/throws", () => {
    throw new Error("boom");
  });
  a.get("/stream", (c) => c.body("x", 200, { "Cache-Control": "no-cache" }));
  a.onError(internalError);
  return a;
}

describe("security headers", () => {
  test("on an answer, a refusal, an error and a 404", async () => {
    const a = app();
    for (const [path, status] of [
      ["/ok", 200],
      ["/refused", 403],
      ["/throws", 500],
      ["/nothing-here", 404],
    ] as const) {
      const res = await a.request(path);
      expect(res.status).toBe(status);
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(k)).toBe(v);
    }
  });

  test("a header the answer set itself is kept", async () => {
    const res = await app().request("/stream");
    expect(res.headers.get("cache-control")).toBe("no-cache");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
  });
});
