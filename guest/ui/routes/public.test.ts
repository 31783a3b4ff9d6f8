import { describe, expect, test } from "bun:test";
import { VERSION } from "../../../lib/version.ts";
import { ASSETS } from "../assets.ts";
import { publicRoutes } from "./public.ts";

describe("public routes", () => {
  test("/health: status, version, hostname, uptime and mycelium (null without it)", async () => {
    const bare = publicRoutes({ hostname: () => "vm1", uptime: () => 3.5 });
    expect(await (await bare.request("/health")).json()).toEqual({
      status: "ok",
      version: VERSION,
      hostname: "vm1",
      uptime: 3.5,
      mycelium: null,
    });
    const myc = publicRoutes({
      hostname: () => "vm1",
      uptime: () => 1,
      mycelium: () => ({ state: "up", address: "4ab::1" }),
    });
    expect(
      ((await (await myc.request("/health")).json()) as { mycelium: unknown }).mycelium,
    ).toEqual({ state: "up", address: "4ab::1" });
  });

  test("the embedded assets, with their types, cached for an hour", async () => {
    const app = publicRoutes({ hostname: () => "vm1", uptime: () => 1 });
    for (const [path, body, type] of [
      ["/assets/app.css", ASSETS.appCss, "text/css"],
      ["/assets/app.js", ASSETS.appJs, "text/javascript"],
      ["/assets/xterm.css", ASSETS.xtermCss, "text/css"],
      ["/assets/xterm.js", ASSETS.xtermJs, "text/javascript"],
    ]) {
      const res = await app.request(path as string);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe(`${type}; charset=utf-8`);
      expect(res.headers.get("cache-control")).toBe("public, max-age=3600");
      expect(await res.text()).toBe(body as string);
    }
    expect((await app.request("/assets/other.js")).status).toBe(404);
  });
});
