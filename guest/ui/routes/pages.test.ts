import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { fakeSource } from "../../../test/helpers/fake-ui-source.ts";
import type { Role } from "../auth.ts";
import { createResponder, type UiApp } from "../http.ts";
import { pageRoutes } from "./pages.ts";

function app(role: Role, terminal = false) {
  const f = fakeSource();
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "4ab:cd::1");
    c.set("session", { id: "i", role, csrf: "tok".repeat(4), ip: "4ab:cd::1", expires: 1e15 });
    c.set("role", role);
    await next();
  });
  a.route("/", pageRoutes(f.source, createResponder({ terminal })));
  return a;
}

describe("pages", () => {
  test("every page renders for a read-only viewer, without action buttons", async () => {
    const a = app("readonly");
    for (const path of ["/", "/services", "/services/web", "/updates"]) {
      const res = await a.request(path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain("text/html");
      expect(await res.text()).not.toContain('data-action="restart"');
    }
  });

  test("an admin's pages carry the action forms with the session's CSRF token", async () => {
    const text = await (await app("admin").request("/services/web")).text();
    expect(text).toContain('data-action="restart"');
    expect(text).toContain(`name="csrf" value="${"tok".repeat(4)}"`);
  });

  test("the terminal link appears only when the terminal is enabled", async () => {
    expect(await (await app("admin", true).request("/")).text()).toContain('href="/terminal"');
    expect(await (await app("admin", false).request("/")).text()).not.toContain('href="/terminal"');
  });

  test("an unknown service is a 404 page naming it, escaped", async () => {
    const res = await app("readonly").request(`/services/${encodeURIComponent("<i>x</i>")}`);
    expect(res.status).toBe(404);
    const text = await res.text();
    expect(text).toContain("no service &quot;&lt;i&gt;x&lt;/i&gt;&quot;");
    expect(text).not.toContain("<i>x</i>");
  });
});
