/**
 * middleware.ts through app.request: the bearer check itself, then the
 * order source ACL (403) → token (401) → API prefix (404), the client
 * address handed on, and the idle timeout lifted only for API requests.
 */
import { describe, expect, test } from "bun:test";
import { Hono } from "hono";
import type { AgentEnv, AgentHono } from "./http.ts";
import { apiOnly, bearerCheck, sourceAcl, tokenAuth } from "./middleware.ts";

const TOKEN = "0123456789abcdef0123456789abcdef";

describe("bearerCheck", () => {
  const ok = bearerCheck(TOKEN);
  test("accepts the token, with any case of 'Bearer' and trailing blanks", () => {
    expect(ok(`Bearer ${TOKEN}`)).toBe(true);
    expect(ok(`bearer ${TOKEN}  `)).toBe(true);
  });
  test("refuses everything else", () => {
    for (const h of [
      undefined,
      null,
      "",
      "Bearer",
      "Bearer ",
      `Bearer ${TOKEN}x`,
      `Bearer ${TOKEN.slice(0, -1)}`,
      `Bearer ${TOKEN} junk`,
      `Basic ${TOKEN}`,
      TOKEN,
    ])
      expect(ok(h)).toBe(false);
  });
});

/** The three checks in front of one route that echoes the client address. */
function app(allow: (ip: string) => boolean, logs: string[] = []) {
  const log = (level: string, msg: string) => void logs.push(`${level}: ${msg}`);
  const a = new Hono<AgentHono>();
  a.use("*", sourceAcl(allow, log), tokenAuth(TOKEN, log), apiOnly());
  a.get("/agent/v1/ip", (c) => c.text(c.get("ip")));
  a.get("/elsewhere", (c) => c.text("reached"));
  return a;
}

function env(address: string | null, timeouts: number[] = []): AgentEnv {
  return {
    requestIP: () => (address === null ? null : { address }),
    timeout: (_req, s) => void timeouts.push(s),
  };
}

const auth = { authorization: `Bearer ${TOKEN}` };

describe("order of checks", () => {
  test("a refused source is 403 before any token check, naming the address", async () => {
    const logs: string[] = [];
    const r = await app(() => false, logs).request("/agent/v1/ip", {}, env("10.1.2.3"));
    expect(r.status).toBe(403);
    expect(await r.json()).toEqual({ error: "source address 10.1.2.3 is not allowed" });
    expect(logs).toEqual(["warn: refused 10.1.2.3: not an allowed source"]);
  });

  test("an unknown address is decided as '' and a throwing policy refuses", async () => {
    const seen: string[] = [];
    const r = await app((ip) => {
      seen.push(ip);
      return false;
    }).request("/agent/v1/ip", { headers: auth }, env(null));
    expect(r.status).toBe(403);
    expect(((await r.json()) as { error: string }).error).toContain("(unknown)");
    expect(seen).toEqual([""]);
    const throwing = app(() => {
      throw new Error("policy broke");
    });
    expect((await throwing.request("/agent/v1/ip", { headers: auth }, env("::1"))).status).toBe(
      403,
    );
    // No env at all (not under Bun.serve): still an answer, still refused.
    expect((await app((ip) => ip !== "").request("/agent/v1/ip", { headers: auth })).status).toBe(
      403,
    );
  });

  test("an allowed source without the token is 401 with a Bearer challenge", async () => {
    const logs: string[] = [];
    const r = await app(() => true, logs).request("/agent/v1/ip", {}, env("127.0.0.1"));
    expect(r.status).toBe(401);
    expect(r.headers.get("www-authenticate")).toBe('Bearer realm="hero-agent"');
    expect(((await r.json()) as { error: string }).error).toContain("token");
    expect(logs).toEqual(["warn: refused 127.0.0.1: missing or wrong token"]);
    expect(logs.join()).not.toContain(TOKEN);
  });

  test("with the token, outside the API prefix is 404 and the route is not reached", async () => {
    const timeouts: number[] = [];
    const r = await app(() => true).request("/elsewhere", { headers: auth }, env("::1", timeouts));
    expect(r.status).toBe(404);
    expect(await r.json()).toEqual({
      error: "no such endpoint: /elsewhere (the API is under /agent/v1/)",
    });
    expect(timeouts).toEqual([]);
  });

  test("an API request reaches its route with the client address and no idle timeout", async () => {
    const timeouts: number[] = [];
    const r = await app(() => true).request(
      "/agent/v1/ip",
      { headers: auth },
      env("::1", timeouts),
    );
    expect(r.status).toBe(200);
    expect(await r.text()).toBe("::1");
    expect(timeouts).toEqual([0]);
  });
});
