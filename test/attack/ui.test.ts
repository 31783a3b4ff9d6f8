/**
 * Attacks on the status UI's login and its form redirects, against the real
 * app (createApp, real argon2id password hashes, a fake service source);
 * the client address of each request is chosen as the server would report
 * it. The memory attacks (clients that never read) are in ui-memory.test.ts.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createApp, type UiEnv } from "../../guest/ui/app.ts";
import { fakeSource } from "../helpers/fake-ui-source.ts";

const from = (address: string): UiEnv => ({ requestIP: () => ({ address }) });

let hash = "";
beforeAll(async () => {
  hash = await Bun.password.hash("right-password", {
    algorithm: "argon2id",
    memoryCost: 1024,
    timeCost: 1,
  });
});

function app() {
  const f = fakeSource();
  return {
    app: createApp({
      hostname: () => "vm",
      uptime: () => 1,
      allow: [],
      source: f.source,
      passwordHash: hash,
    }),
    calls: f.calls,
  };
}

function login(a: ReturnType<typeof createApp>, password: string, ip: string) {
  return a.request(
    "/api/v1/login",
    {
      method: "POST",
      body: JSON.stringify({ password }),
      headers: { "content-type": "application/json" },
    },
    from(ip),
  );
}

describe("login rate limit", () => {
  test("100 parallel wrong logins from one address: most get 429, not a password check", async () => {
    const { app: a } = app();
    const res = await Promise.all(
      Array.from({ length: 100 }, () => login(a, "guess", "4ab:cd:1:2::1")),
    );
    const statuses = res.map((r) => r.status);
    const limited = statuses.filter((s) => s === 429).length;
    const wrong = statuses.filter((s) => s === 401).length;
    console.log(`ui attack: 100 parallel wrong logins → ${wrong}×401, ${limited}×429`);
    expect(wrong).toBeLessThanOrEqual(5);
    expect(limited).toBeGreaterThanOrEqual(95);
    expect(res.find((r) => r.status === 429)?.headers.get("retry-after")).toMatch(/^\d+$/);
    // The same node from another address of its /64 is the same source.
    expect((await login(a, "guess", "4ab:cd:1:2::99")).status).toBe(429);
    // The admin, from another source, is not locked out.
    const admin = await login(a, "right-password", "4ab:ef::1");
    expect(admin.status).toBe(200);
  });

  test("failures from many sources never lock the admin out", async () => {
    const { app: a } = app();
    // 40 mycelium nodes (each its own /64), 5 wrong guesses each: 200 failures in a minute.
    const res = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        Array.from({ length: 5 }, () => login(a, "guess", `4${(i + 16).toString(16)}::1`)),
      ).flat(),
    );
    expect(res.every((r) => r.status === 401)).toBe(true);
    const admin = await login(a, "right-password", "127.0.0.1");
    console.log(
      `ui attack: after 200 failures from 40 sources, the admin's login → ${admin.status}`,
    );
    expect(admin.status).toBe(200);
  });
});

describe("redirect after a UI action", () => {
  test("`back` is only ever a path on this origin", async () => {
    const { app: a, calls } = app();
    const env = from("4ab:cd::1");
    const s = await login(a, "right-password", "4ab:cd::1");
    const cookie = (s.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const { csrf } = (await s.json()) as { csrf: string };
    const act = async (back: string) => {
      const r = await a.request(
        "/services/web/restart",
        {
          method: "POST",
          headers: { cookie, "content-type": "application/x-www-form-urlencoded" },
          body: `csrf=${csrf}&back=${encodeURIComponent(back)}`,
        },
        env,
      );
      expect(r.status).toBe(303);
      return r.headers.get("location");
    };
    const vectors = [
      "//evil.example/x",
      "/\\evil.example/x",
      "https://evil.example/x",
      "%2F%2Fevil.example/x",
      "\t//evil.example/x",
      "/\t/evil.example/x",
      "/\n/evil.example/x",
      " //evil.example/x",
      "///evil.example/x",
      "/\\/evil.example/x",
      "javascript:alert(1)",
      "",
    ];
    const got: Record<string, string | null> = {};
    for (const v of vectors) got[v] = await act(v);
    console.log(`ui attack: redirects: ${JSON.stringify(got)}`);
    for (const v of vectors)
      expect({ back: v, location: got[v] }).toEqual({ back: v, location: "/services" });
    // A same-origin path still works.
    expect(await act("/services/web")).toBe("/services/web");
    expect(calls.length).toBe(vectors.length + 1);
  });
});
