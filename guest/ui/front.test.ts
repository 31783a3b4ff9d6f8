import { describe, expect, test } from "bun:test";
import type { UiEnv } from "./app.ts";
import { createFront } from "./front.ts";
import { SECURITY_HEADERS } from "./middleware/headers.ts";
import { type Fetcher, lazyApp } from "./serve.ts";

const from = (address: string): UiEnv => ({ requestIP: () => ({ address }) });
const deps = { hostname: () => "vm1", uptime: () => 3.5, allow: ["10.0.2.2/32"] };
type Env = Parameters<Fetcher["fetch"]>[1];

/** A stand-in for the full app that records what reaches it. */
function rest(answer = () => new Response("from the full app", { status: 200 })) {
  const seen: { url: string; env: unknown }[] = [];
  const fetcher: Fetcher = {
    fetch(req, env) {
      seen.push({ url: req.url, env });
      return answer();
    },
  };
  return { fetcher, seen };
}

const get = (app: ReturnType<typeof createFront>, path: string, env: UiEnv) =>
  app.fetch(new Request(`http://vm${path}`), env as unknown as Env);

describe("the UI's front", () => {
  test("/health is answered by the front: the full app is not asked (nor loaded)", async () => {
    const r = rest();
    const res = await get(createFront(deps, r.fetcher), "/health", from("127.0.0.1"));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok", hostname: "vm1", uptime: 3.5 });
    expect(r.seen).toEqual([]);
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) expect(res.headers.get(k)).toBe(v);
  });

  test("everything else goes to the full app with its request and Bun's server", async () => {
    const r = rest();
    const env = from("10.0.2.2");
    const res = await get(createFront(deps, r.fetcher), "/api/services?x=1", env);
    expect(await res.text()).toBe("from the full app");
    expect(r.seen).toEqual([{ url: "http://vm/api/services?x=1", env }]);
    expect(res.headers.get("X-Frame-Options")).toBe("DENY");
  });

  test("a client outside loopback, mycelium and [ui] allow gets 403, /health included, and nothing is forwarded", async () => {
    const r = rest();
    const app = createFront(deps, r.fetcher);
    for (const path of ["/health", "/", "/api/services"]) {
      const res = await get(app, path, from("192.0.2.7"));
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ reason: "client 192.0.2.7 is not allowed" });
    }
    expect(r.seen).toEqual([]);
  });

  test("a full app that cannot load answers 503 for its pages; /health still answers", async () => {
    const broken = lazyApp(async () => {
      throw new Error("chunk missing");
    });
    const app = createFront(deps, broken);
    expect((await get(app, "/", from("127.0.0.1"))).status).toBe(503);
    expect((await get(app, "/health", from("127.0.0.1"))).status).toBe(200);
  });

  test("an exception in the full app is a bare 500 (logged, not sent)", async () => {
    const r = rest(() => {
      throw new Error("secret path /etc/hero-init/agent.token");
    });
    const res = await get(createFront(deps, r.fetcher), "/api/x", from("127.0.0.1"));
    expect(res.status).toBe(500);
    expect(await res.text()).not.toContain("agent.token");
  });
});
