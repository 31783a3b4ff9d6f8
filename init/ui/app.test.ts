import { describe, expect, test } from "bun:test";
import { createApp, type UiEnv } from "./app.ts";
import { bindAddresses } from "./serve.ts";

const from = (address: string): UiEnv => ({ requestIP: () => ({ address }) });
const app = createApp({ hostname: () => "vm1", uptime: () => 12.5, allow: ["10.0.2.2/32"] });

describe("UI app", () => {
  test("/health answers loopback, mycelium and configured clients", async () => {
    for (const ip of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "4ab:cd::1", "10.0.2.2"]) {
      const res = await app.request("/health", {}, from(ip));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "ok", hostname: "vm1", uptime: 12.5 });
    }
  });

  test("other clients are refused with 403 and the reason", async () => {
    for (const ip of ["10.0.2.3", "192.0.2.1", "2001:db8::1", "fe80::1", "not-an-ip"]) {
      const res = await app.request("/health", {}, from(ip));
      expect(res.status).toBe(403);
      expect(((await res.json()) as { reason: string }).reason).toContain(ip);
    }
  });

  test("no client address at all is refused", async () => {
    expect((await app.request("/health")).status).toBe(403);
  });

  test("unknown paths are 404 JSON", async () => {
    const res = await app.request("/nope", {}, from("127.0.0.1"));
    expect(res.status).toBe(404);
  });
});

describe("bind addresses", () => {
  test("loopback always, wildcard replaces loopback of its family, no duplicates", () => {
    expect(bindAddresses([])).toEqual(["127.0.0.1", "::1"]);
    expect(bindAddresses(["0.0.0.0"])).toEqual(["::1", "0.0.0.0"]);
    expect(bindAddresses(["::", "127.0.0.1", "4ab::1"])).toEqual(["127.0.0.1", "::", "4ab::1"]);
  });
});
