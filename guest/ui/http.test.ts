import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { logHistory } from "../../lib/log.ts";
import type { Role } from "./auth.ts";
import { createResponder, type UiApp } from "./http.ts";
import { internalError } from "./internal-error.ts";

/** An app whose routes refuse, with `role` set; unknown paths go to the responder's 404. */
function app(role: Role | null) {
  const ui = createResponder({ terminal: false });
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "127.0.0.1");
    c.set("session", null);
    c.set("role", role);
    await next();
  });
  for (const path of ["/api/v1/refuse", "/x/refuse"])
    a.get(path, (c) => ui.refuse(c, 429, "slow <down>"));
  for (const path of ["/api/admin", "/x/admin"])
    a.get(path, (c) => ui.needAdmin(c) ?? c.text("admin only"));
  a.get("/throw", () => {
    throw new Error("secret detail");
  });
  a.notFound(ui.notFound);
  a.onError(internalError);
  return a;
}

describe("responder", () => {
  test("a refusal is JSON under /api/, else an HTML page with the message escaped", async () => {
    const api = await app("readonly").request("/api/v1/refuse");
    expect(api.status).toBe(429);
    expect(await api.json()).toEqual({ error: "slow <down>" });
    for (const role of ["readonly", null] as const) {
      const page = await app(role).request("/x/refuse");
      expect(page.status).toBe(429);
      expect(page.headers.get("content-type")).toContain("text/html");
      expect(await page.text()).toContain("slow &lt;down&gt;");
    }
  });

  test("needAdmin lets only the admin through", async () => {
    expect(await (await app("admin").request("/x/admin")).text()).toBe("admin only");
    const ro = await app("readonly").request("/api/admin");
    expect(ro.status).toBe(403);
    expect(await ro.json()).toEqual({ error: "this needs the admin role" });
  });

  test("404: JSON for the API and for clients without a role, else a page", async () => {
    expect(await (await app("readonly").request("/api/v1/nothing")).json()).toEqual({
      error: "not found",
    });
    expect(await (await app(null).request("/nothing")).json()).toEqual({ error: "not found" });
    const page = await app("readonly").request("/nothing");
    expect(page.status).toBe(404);
    expect(page.headers.get("content-type")).toContain("text/html");
  });

  test("an error is logged with the request and answered without its detail", async () => {
    const res = await app("admin").request("/throw");
    expect(res.status).toBe(500);
    expect(await res.text()).toBe('{"error":"internal error"}');
    expect(logHistory().join("\n")).toContain("GET /throw: secret detail");
  });
});
