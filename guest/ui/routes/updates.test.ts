import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import { fakeSource } from "../../../test/helpers/fake-ui-source.ts";
import type { Role } from "../auth.ts";
import { createResponder, type UiApp } from "../http.ts";
import { updateRoutes } from "./updates.ts";

function app(role: Role) {
  const f = fakeSource();
  const a = new Hono<UiApp>();
  a.use(async (c, next) => {
    c.set("ip", "4ab:cd::1");
    c.set("session", { id: "i", role, csrf: "t", ip: "4ab:cd::1", expires: 1e15 });
    c.set("role", role);
    await next();
  });
  a.route("/", updateRoutes(f.source, createResponder({ terminal: false })));
  const calls: string[] = [];
  const updater = {
    check: async () => {
      calls.push("check");
      return undefined;
    },
    apply: async () => {
      calls.push("apply");
      return { outcome: "updated" };
    },
    rollback: async () => {
      throw new Error("nothing to roll back to");
    },
  };
  return { a, source: f.source, updater, calls };
}

const POST = { method: "POST" };

describe("update routes", () => {
  test("no updater: 501 for the API and the form", async () => {
    const { a } = app("admin");
    for (const path of ["/api/v1/updates/check", "/updates/apply"]) {
      const res = await a.request(path, POST);
      expect(res.status).toBe(501);
      expect(await res.text()).toContain("no updater is configured in this VM");
    }
  });

  test("an updater set after the app was built is used; API answers its result or ok", async () => {
    const { a, source, updater, calls } = app("admin");
    source.updater = updater;
    expect(await (await a.request("/api/v1/updates/check", POST)).json()).toEqual({ ok: true });
    expect(await (await a.request("/api/v1/updates/apply", POST)).json()).toEqual({
      outcome: "updated",
    });
    const form = await a.request("/updates/check", POST);
    expect(form.status).toBe(303);
    expect(form.headers.get("location")).toBe("/updates");
    expect(calls).toEqual(["check", "apply", "check"]);
  });

  test("a refusal is 400 with its reason; read-only gets 403 and calls nothing", async () => {
    const admin = app("admin");
    admin.source.updater = admin.updater;
    const rb = await admin.a.request("/api/v1/updates/rollback", POST);
    expect(rb.status).toBe(400);
    expect(await rb.json()).toEqual({ error: "rollback: nothing to roll back to" });
    const ro = app("readonly");
    ro.source.updater = ro.updater;
    for (const path of ["/api/v1/updates/apply", "/updates/apply"])
      expect((await ro.a.request(path, POST)).status).toBe(403);
    expect(ro.calls).toEqual([]);
  });

  test("GET never updates", async () => {
    const { a, source, updater, calls } = app("admin");
    source.updater = updater;
    expect((await a.request("/api/v1/updates/apply")).status).toBe(404);
    expect(calls).toEqual([]);
  });
});
