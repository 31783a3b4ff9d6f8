import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { UiApp, UiEnv } from "../http.ts";
import { sourceAcl } from "./source-acl.ts";

const from = (address: string): UiEnv => ({ requestIP: () => ({ address }) });

function app(allow: string[] = []) {
  const seen: string[] = [];
  const a = new Hono<UiApp>();
  a.use(sourceAcl(allow));
  a.get("*", (c) => {
    seen.push(c.get("ip"));
    return c.text("in");
  });
  return { a, seen };
}

describe("source ACL", () => {
  test("loopback and mycelium pass, and the route sees the client address", async () => {
    const { a, seen } = app();
    for (const ip of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "4ab:cd::1"])
      expect((await a.request("/x", {}, from(ip))).status).toBe(200);
    expect(seen).toEqual(["127.0.0.1", "::1", "::ffff:127.0.0.1", "4ab:cd::1"]);
  });

  test("other clients get 403 with their address, and no route runs", async () => {
    const { a, seen } = app();
    for (const ip of ["10.0.2.2", "192.0.2.1", "2001:db8::1", "fe80::1", "not-an-ip", ""]) {
      const res = await a.request("/x", {}, from(ip));
      expect(res.status).toBe(403);
      expect(await res.json()).toEqual({
        error: "forbidden",
        reason: `client ${ip} is not allowed`,
      });
    }
    expect(seen).toEqual([]);
  });

  test("no client address at all is refused as unknown", async () => {
    const { a } = app();
    const none = await a.request("/x");
    expect(none.status).toBe(403);
    expect(((await none.json()) as { reason: string }).reason).toBe(
      "client unknown is not allowed",
    );
    const nulled = await a.request("/x", {}, { requestIP: () => null } satisfies UiEnv);
    expect(nulled.status).toBe(403);
  });

  test("configured CIDRs are allowed, their neighbours are not", async () => {
    const { a } = app(["10.0.2.0/24", "2001:db8:1::/48"]);
    expect((await a.request("/x", {}, from("10.0.2.7"))).status).toBe(200);
    expect((await a.request("/x", {}, from("2001:db8:1:5::9"))).status).toBe(200);
    expect((await a.request("/x", {}, from("10.0.3.1"))).status).toBe(403);
    expect((await a.request("/x", {}, from("2001:db8:2::1"))).status).toBe(403);
  });
});
