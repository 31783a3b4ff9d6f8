import { beforeAll, describe, expect, test } from "bun:test";
import { logHistory } from "../../lib/log.ts";
import { fakeSource } from "../../test/helpers/fake-ui-source.ts";
import { createApp, type UiDeps, type UiEnv } from "./app.ts";
import { createLoginLimiter } from "./auth.ts";
import { bindAddresses } from "./serve.ts";
import { createTerminals } from "./terminal.ts";

const from = (address: string, upgrade?: UiEnv["upgrade"]): UiEnv => ({
  requestIP: () => ({ address }),
  upgrade,
});
const LOOP = from("127.0.0.1");
const MYC = from("4ab:cd::1");
const health = createApp({ hostname: () => "vm1", uptime: () => 12.5, allow: ["10.0.2.2/32"] });

let adminHash = "";
let roHash = "";
beforeAll(async () => {
  adminHash = await Bun.password.hash("admin-pw", {
    algorithm: "argon2id",
    memoryCost: 1024,
    timeCost: 1,
  });
  roHash = await Bun.password.hash("ro-pw", {
    algorithm: "argon2id",
    memoryCost: 1024,
    timeCost: 1,
  });
});

function withPassword(extra: Partial<UiDeps> = {}) {
  const f = fakeSource();
  const app = createApp({
    hostname: () => "vm1",
    uptime: () => 1,
    allow: [],
    source: f.source,
    passwordHash: adminHash,
    readonlyPasswordHash: roHash,
    ...extra,
  });
  return { app, ...f };
}

async function login(app: ReturnType<typeof createApp>, password: string, env = MYC) {
  const res = await app.request(
    "/api/v1/login",
    {
      method: "POST",
      body: JSON.stringify({ password }),
      headers: { "content-type": "application/json" },
    },
    env,
  );
  const cookie = (res.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
  const body = (await res.json()) as { csrf?: string; role?: string };
  return { res, cookie, csrf: body.csrf ?? "", role: body.role };
}

describe("source addresses", () => {
  test("/health answers loopback, mycelium and configured clients", async () => {
    for (const ip of ["127.0.0.1", "::1", "::ffff:127.0.0.1", "4ab:cd::1", "10.0.2.2"]) {
      const res = await health.request("/health", {}, from(ip));
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ status: "ok", hostname: "vm1", uptime: 12.5 });
    }
  });

  test("other clients are refused with 403 and the reason, on every path", async () => {
    const { app } = withPassword();
    for (const ip of ["10.0.2.3", "192.0.2.1", "2001:db8::1", "fe80::1", "not-an-ip"]) {
      for (const path of ["/health", "/", "/login", "/api/v1/services", "/assets/app.js"]) {
        const res = await app.request(path, {}, from(ip));
        expect(res.status).toBe(403);
        expect(((await res.json()) as { reason: string }).reason).toContain(ip);
      }
    }
    expect((await health.request("/health")).status).toBe(403);
  });
});

describe("no password configured: read-only, loopback only", () => {
  const f = fakeSource();
  const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source: f.source });

  test("loopback sees the pages and the API, without action buttons", async () => {
    const page = await app.request("/services", {}, LOOP);
    expect(page.status).toBe(200);
    const text = await page.text();
    expect(text).toContain("read-only");
    expect(text).not.toContain('data-action="restart"');
    expect((await app.request("/api/v1/services", {}, LOOP)).status).toBe(200);
  });

  test("a mycelium client is refused: no password, no remote access", async () => {
    const res = await app.request("/services", {}, MYC);
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("no UI password is configured");
  });

  test("actions are refused even from loopback (no session, no admin)", async () => {
    const res = await app.request("/api/v1/services/web/restart", { method: "POST" }, LOOP);
    expect(res.status).toBe(401);
    expect(f.calls).toEqual([]);
  });
});

describe("login, sessions, roles", () => {
  test("no session: pages redirect to /login, the API answers 401", async () => {
    const { app } = withPassword();
    const page = await app.request("/services", {}, LOOP);
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/login");
    expect((await app.request("/api/v1/services", {}, LOOP)).status).toBe(401);
    expect((await app.request("/login", {}, LOOP)).status).toBe(200);
  });

  test("the session cookie is HttpOnly, SameSite=Strict, Secure only over TLS", async () => {
    const { app } = withPassword();
    const { res, role } = await login(app, "admin-pw");
    expect(res.status).toBe(200);
    expect(role).toBe("admin");
    const c = res.headers.get("set-cookie") ?? "";
    expect(c).toContain("HttpOnly");
    expect(c).toContain("SameSite=Strict");
    expect(c).not.toContain("Secure");
    const tls = await app.request(
      "https://vm1/api/v1/login",
      { method: "POST", body: JSON.stringify({ password: "admin-pw" }) },
      MYC,
    );
    expect(tls.headers.get("set-cookie")).toContain("Secure");
  });

  test("wrong password: 401; after 5 failures the client gets 429 with Retry-After", async () => {
    let t = 0;
    const { app } = withPassword({ limiter: createLoginLimiter({ now: () => t }) });
    for (let i = 0; i < 5; i++) expect((await login(app, "nope")).res.status).toBe(401);
    const limited = await login(app, "admin-pw");
    expect(limited.res.status).toBe(429);
    expect(Number(limited.res.headers.get("retry-after"))).toBeGreaterThan(0);
    t += 61_000;
    expect((await login(app, "admin-pw")).res.status).toBe(200);
  });

  test("the read-only role sees but cannot act", async () => {
    const { app, calls } = withPassword();
    const s = await login(app, "ro-pw");
    expect(s.role).toBe("readonly");
    const res = await app.request(
      "/api/v1/services/web/restart",
      { method: "POST", headers: { cookie: s.cookie, "x-csrf-token": s.csrf } },
      MYC,
    );
    expect(res.status).toBe(403);
    expect(calls).toEqual([]);
    expect(
      (await app.request("/api/v1/services", { headers: { cookie: s.cookie } }, MYC)).status,
    ).toBe(200);
  });

  test("logout ends the session", async () => {
    const { app } = withPassword();
    const s = await login(app, "admin-pw");
    const out = await app.request(
      "/api/v1/logout",
      { method: "POST", headers: { cookie: s.cookie, "x-csrf-token": s.csrf } },
      MYC,
    );
    expect(out.status).toBe(200);
    expect(
      (await app.request("/api/v1/services", { headers: { cookie: s.cookie } }, MYC)).status,
    ).toBe(401);
  });
});

describe("actions: POST, admin, CSRF", () => {
  test("missing or wrong CSRF token → 403, nothing done", async () => {
    const { app, calls } = withPassword();
    const s = await login(app, "admin-pw");
    for (const headers of [
      { cookie: s.cookie },
      { cookie: s.cookie, "x-csrf-token": "0".repeat(64) },
    ] as Record<string, string>[]) {
      const res = await app.request(
        "/api/v1/services/web/restart",
        { method: "POST", headers },
        MYC,
      );
      expect(res.status).toBe(403);
    }
    const form = await app.request(
      "/services/web/restart",
      {
        method: "POST",
        headers: { cookie: s.cookie, "content-type": "application/x-www-form-urlencoded" },
        body: "csrf=wrong",
      },
      MYC,
    );
    expect(form.status).toBe(403);
    expect(calls).toEqual([]);
  });

  test("a cross-origin POST is refused even with the token", async () => {
    const { app, calls } = withPassword();
    const s = await login(app, "admin-pw");
    const res = await app.request(
      "http://vm1/api/v1/services/web/restart",
      {
        method: "POST",
        headers: { cookie: s.cookie, "x-csrf-token": s.csrf, origin: "http://evil.example" },
      },
      MYC,
    );
    expect(res.status).toBe(403);
    expect(calls).toEqual([]);
  });

  test("admin with the token: API and form both act; GET never acts", async () => {
    const { app, calls } = withPassword();
    const s = await login(app, "admin-pw");
    const api = await app.request(
      "/api/v1/services/web/kill",
      {
        method: "POST",
        headers: { cookie: s.cookie, "x-csrf-token": s.csrf, "content-type": "application/json" },
        body: JSON.stringify({ signal: "SIGUSR1" }),
      },
      MYC,
    );
    expect(api.status).toBe(200);
    const form = await app.request(
      "/services/web/restart",
      {
        method: "POST",
        headers: { cookie: s.cookie, "content-type": "application/x-www-form-urlencoded" },
        body: `csrf=${s.csrf}&back=%2Fservices%2Fweb`,
      },
      MYC,
    );
    expect(form.status).toBe(303);
    expect(form.headers.get("location")).toBe("/services/web");
    const get = await app.request("/services/web/restart", { headers: { cookie: s.cookie } }, MYC);
    expect(get.status).not.toBe(200);
    expect(calls).toEqual([
      ["web", "kill", "SIGUSR1"],
      ["web", "restart", undefined],
    ]);
  });

  test("unknown service or action → 404; bad signal → 400", async () => {
    const { app } = withPassword();
    const s = await login(app, "admin-pw");
    const post = (path: string, body = "{}") =>
      app.request(
        path,
        { method: "POST", headers: { cookie: s.cookie, "x-csrf-token": s.csrf }, body },
        MYC,
      );
    expect((await post("/api/v1/services/nope/start")).status).toBe(404);
    expect((await post("/api/v1/services/web/explode")).status).toBe(404);
    expect((await post("/api/v1/services/web/kill", '{"signal":"; rm -rf /"}')).status).toBe(400);
  });
});

describe("rendering", () => {
  test("a service named <script> renders as text, on every page", async () => {
    const f = fakeSource();
    const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source: f.source });
    for (const path of [
      "/",
      "/services",
      `/services/${encodeURIComponent("<script>alert(1)</script>")}`,
    ]) {
      const text = await (await app.request(path, {}, LOOP)).text();
      expect(text).not.toContain("<script>alert(1)");
      expect(text).not.toContain("<b>boom</b>");
    }
    const list = await (await app.request("/services", {}, LOOP)).text();
    expect(list).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    expect(list).toContain("Error(&lt;b&gt;boom&lt;/b&gt;)");
  });

  test("pages carry a strict CSP and load only embedded assets", async () => {
    const f = fakeSource();
    const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source: f.source });
    const res = await app.request("/", {}, LOOP);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    const text = await res.text();
    expect(text).not.toMatch(/src="https?:/);
    expect(text).not.toMatch(/<script>[^<]/);
    for (const a of [
      "/assets/app.js",
      "/assets/app.css",
      "/assets/xterm.js",
      "/assets/xterm.css",
    ]) {
      const r = await app.request(a, {}, LOOP);
      expect(r.status).toBe(200);
      expect((await r.text()).length).toBeGreaterThan(100);
    }
  });

  test("request bodies over 64 KiB → 413", async () => {
    const { app } = withPassword();
    const res = await app.request(
      "/api/v1/login",
      { method: "POST", body: "x".repeat(70_000), headers: { "content-length": "70000" } },
      MYC,
    );
    expect(res.status).toBe(413);
  });

  test("updates: the page shows what is installed; actions are 501 without an updater", async () => {
    const { app } = withPassword();
    const s = await login(app, "admin-pw");
    expect((await app.request("/updates", { headers: { cookie: s.cookie } }, MYC)).status).toBe(
      200,
    );
    const res = await app.request(
      "/api/v1/updates/check",
      { method: "POST", headers: { cookie: s.cookie, "x-csrf-token": s.csrf } },
      MYC,
    );
    expect(res.status).toBe(501);
  });

  test("updates: with an updater, Check/Apply call it for admins; read-only gets 403; a refusal is 400 with its reason", async () => {
    const calls: string[] = [];
    const { app, source } = withPassword();
    // The app reads source.updater on each request.
    source.updater = {
      check: async () => {
        calls.push("check");
        return { outcome: "available" };
      },
      apply: async () => {
        calls.push("apply");
        return { outcome: "updated" };
      },
      rollback: async () => {
        throw new Error("old versions are removed once an update is healthy");
      },
    };
    const post = (path: string, s: { cookie: string; csrf: string }) =>
      app.request(
        path,
        { method: "POST", headers: { cookie: s.cookie, "x-csrf-token": s.csrf } },
        MYC,
      );
    const ro = await login(app, "ro-pw");
    expect((await post("/api/v1/updates/apply", ro)).status).toBe(403);
    expect(calls).toEqual([]);
    const admin = await login(app, "admin-pw");
    const check = await post("/api/v1/updates/check", admin);
    expect(await check.json()).toEqual({ outcome: "available" });
    expect(await (await post("/api/v1/updates/apply", admin)).json()).toEqual({
      outcome: "updated",
    });
    expect(calls).toEqual(["check", "apply"]);
    const rb = await post("/api/v1/updates/rollback", admin);
    expect(rb.status).toBe(400);
    expect(await rb.text()).toContain("old versions are removed");
  });
});

/** Reads an SSE response until `until` matches the text so far (or the time runs out). */
async function readSse(res: Response, until: RegExp, ms = 2000): Promise<string> {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const dec = new TextDecoder();
  let text = "";
  const deadline = Date.now() + ms;
  while (!until.test(text) && Date.now() < deadline) {
    const r = await Promise.race([
      reader.read(),
      Bun.sleep(deadline - Date.now()).then(() => null),
    ]);
    if (!r || r.done) break;
    text += dec.decode(r.value);
  }
  await reader.cancel();
  return text;
}

describe("log streams (SSE)", () => {
  test("resumes after Last-Event-ID, then follows live lines", async () => {
    const f = fakeSource();
    const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source: f.source });
    for (let i = 1; i <= 3; i++) f.ring.push("web", "stdout", `line ${i}`);
    const res = await app.request(
      "/api/v1/services/web/logs",
      { headers: { accept: "text/event-stream", "last-event-id": "2" } },
      LOOP,
    );
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    setTimeout(() => f.ring.push("web", "stderr", "live <b>"), 50);
    const text = await readSse(res, /live/);
    expect(text).not.toContain("line 2");
    expect(text).toContain("id: 3\n");
    expect(text).toContain('"text":"line 3"');
    expect(text).toContain('"text":"live <b>"');
  });

  test("heartbeats keep an idle stream alive; a gap is announced", async () => {
    const f = fakeSource();
    const app = createApp({
      hostname: () => "vm1",
      uptime: () => 1,
      allow: [],
      source: f.source,
      heartbeatMs: 30,
    });
    for (let i = 0; i < 150; i++) f.ring.push("web", "stdout", `x${i}`); // ring keeps 100
    const res = await app.request(
      "/api/v1/logs?after=10",
      { headers: { accept: "text/event-stream" } },
      LOOP,
    );
    const text = await readSse(res, /: heartbeat/);
    expect(text).toContain('event: gap\ndata: {"missed":40}');
    expect(text).toContain(": heartbeat");
  });

  test("followers beyond the limit get 503; a closed stream frees its slot", async () => {
    const f = fakeSource();
    const app = createApp({
      hostname: () => "vm1",
      uptime: () => 1,
      allow: [],
      source: f.source,
      maxFollowers: 2,
    });
    const open = () =>
      app.request("/api/v1/logs", { headers: { accept: "text/event-stream" } }, LOOP);
    const a = await open();
    const b = await open();
    expect((await open()).status).toBe(503);
    await (a.body as ReadableStream).cancel();
    expect((await open()).status).toBe(200);
    await (b.body as ReadableStream).cancel();
  });

  test("JSON log lines without SSE", async () => {
    const f = fakeSource();
    const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source: f.source });
    f.ring.push("web", "stdout", "a");
    f.ring.push("other", "stdout", "b");
    const res = await app.request("/api/v1/services/web/logs?after=0", {}, LOOP);
    expect(res.headers.get("content-type")).toContain("application/json");
    expect(((await res.json()) as { text: string }[]).map((l) => l.text)).toEqual(["a"]);
  });

  test("JSON logs come in pages: ?limit= lines at most, the next page after the last seq", async () => {
    const f = fakeSource();
    const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source: f.source });
    for (let i = 1; i <= 30; i++) f.ring.push("web", "stdout", `l${i}`);
    const page = async (q: string) => {
      const res = await app.request(`/api/v1/logs?${q}`, {}, LOOP);
      return ((await res.json()) as { seq: number }[]).map((l) => l.seq);
    };
    expect(await page("limit=10")).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await page("after=10&limit=10")).toEqual([11, 12, 13, 14, 15, 16, 17, 18, 19, 20]);
    expect((await page("after=25")).length).toBe(5);
    expect(await page("after=30")).toEqual([]);
    for (const bad of ["0", "1001", "x", "1.5"]) {
      const res = await app.request(`/api/v1/logs?limit=${bad}`, {}, LOOP);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toContain("limit");
    }
  });

  test("a page is at most logPageBytes of JSON (lines escaped ×6 counted as sent)", async () => {
    const f = fakeSource();
    const app = createApp({
      hostname: () => "vm1",
      uptime: () => 1,
      allow: [],
      source: f.source,
      logPageBytes: 20_000,
    });
    for (let i = 0; i < 50; i++) f.ring.push("web", "stdout", "\u0001".repeat(1000));
    const res = await app.request("/api/v1/logs", {}, LOOP);
    const text = await res.text();
    expect(text.length).toBeLessThanOrEqual(20_000);
    const lines = JSON.parse(text) as unknown[];
    expect(lines.length).toBe(3); // 6,000+ bytes each
  });

  test("a follower that reads nothing is dropped after a heartbeat period, freeing its slot", async () => {
    const f = fakeSource();
    const app = createApp({
      hostname: () => "vm1",
      uptime: () => 1,
      allow: [],
      source: f.source,
      maxFollowers: 1,
      heartbeatMs: 20,
      logClientBytes: 4096,
    });
    for (let i = 0; i < 100; i++) f.ring.push("web", "stdout", "x".repeat(200));
    const open = () =>
      app.request("/api/v1/logs", { headers: { accept: "text/event-stream" } }, LOOP);
    const silent = await open(); // never read
    expect(silent.status).toBe(200);
    expect((await open()).status).toBe(503);
    let next = await open();
    for (let i = 0; i < 250 && next.status === 503; i++) {
      await Bun.sleep(20);
      next = await open();
    }
    expect(next.status).toBe(200);
    await (next.body as ReadableStream).cancel();
  });
});

describe("debug terminal", () => {
  test("disabled by default: 404 on the page and the socket", async () => {
    const { app } = withPassword();
    const s = await login(app, "admin-pw");
    expect((await app.request("/terminal", { headers: { cookie: s.cookie } }, MYC)).status).toBe(
      404,
    );
    expect((await app.request("/terminal/ws", { headers: { cookie: s.cookie } }, MYC)).status).toBe(
      404,
    );
  });

  test("enabled: read-only → 403; admin needs same Origin and the CSRF token", async () => {
    const upgrades: unknown[] = [];
    const env = from("4ab:cd::1", (_req, o) => {
      upgrades.push(o.data);
      return true;
    });
    const { app } = withPassword({ terminals: createTerminals(), terminalAllow: ["4ab:cd::/64"] });
    const ro = await login(app, "ro-pw", env);
    expect((await app.request("/terminal", { headers: { cookie: ro.cookie } }, env)).status).toBe(
      403,
    );
    const s = await login(app, "admin-pw", env);
    expect((await app.request("/terminal", { headers: { cookie: s.cookie } }, env)).status).toBe(
      200,
    );
    const ws = (q: string, origin?: string) =>
      app.request(
        `http://vm1/terminal/ws${q}`,
        { headers: { cookie: s.cookie, ...(origin ? { origin } : {}) } },
        env,
      );
    expect((await ws(`?csrf=${s.csrf}`)).status).toBe(403);
    expect((await ws(`?csrf=${s.csrf}`, "http://evil.example")).status).toBe(403);
    expect((await ws("?csrf=bad", "http://vm1")).status).toBe(403);
    expect(upgrades).toEqual([]);
    expect((await ws(`?csrf=${s.csrf}&cols=100&rows=30`, "http://vm1")).status).toBe(200);
    expect(upgrades).toEqual([{ kind: "terminal", ip: "4ab:cd::1", cols: 100, rows: 30 }]);
  });
});

describe("hardening", () => {
  test("every kind of answer carries the security headers (page, API, refusal, 404)", async () => {
    const { app } = withPassword();
    const s = await login(app, "admin-pw");
    const answers = [
      await app.request("/", { headers: { cookie: s.cookie } }, MYC),
      await app.request("/api/v1/services", { headers: { cookie: s.cookie } }, MYC),
      await app.request("/api/v1/services", {}, MYC), // 401
      await app.request("/health", {}, from("192.0.2.9")), // 403
      await app.request("/no/such/page", { headers: { cookie: s.cookie } }, MYC),
    ];
    expect(answers.map((r) => r.status)).toEqual([200, 200, 401, 403, 404]);
    for (const r of answers) {
      expect(r.headers.get("x-frame-options")).toBe("DENY");
      expect(r.headers.get("x-content-type-options")).toBe("nosniff");
      expect(r.headers.get("referrer-policy")).toBe("same-origin");
      expect(r.headers.get("cache-control")).toBe("no-store");
      expect(r.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    }
  });

  test("a POST from an opaque origin (Origin: null) is refused even with session and token", async () => {
    const { app, calls } = withPassword();
    const s = await login(app, "admin-pw");
    const res = await app.request(
      "http://vm1/api/v1/services/web/restart",
      { method: "POST", headers: { cookie: s.cookie, "x-csrf-token": s.csrf, origin: "null" } },
      MYC,
    );
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("opaque origin");
    expect(calls).toEqual([]);
  });

  test("a source that throws gives 500 (the reason is logged, not sent), and the app keeps answering", async () => {
    const f = fakeSource();
    const source = {
      ...f.source,
      services: () => {
        throw new Error("supervisor exploded");
      },
    };
    const app = createApp({ hostname: () => "vm1", uptime: () => 1, allow: [], source });
    const res = await app.request("/api/v1/services", {}, LOOP);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({ error: "internal error" });
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(logHistory().join("\n")).toContain("GET /api/v1/services: supervisor exploded");
    expect((await app.request("/health", {}, LOOP)).status).toBe(200);
    expect((await app.request("/api/v1/overview", {}, LOOP)).status).toBe(200);
  });

  test("at most 4 terminal sessions: a 5th socket is closed, and /terminal/ws answers 503", async () => {
    const terminals = createTerminals({ shell: ["sleep", "30"] });
    type Ws = Parameters<typeof terminals.websocket.open>[0];
    const closed: [number, string][] = [];
    const sockets = Array.from(
      { length: 5 },
      (_, i) =>
        ({
          data: { kind: "terminal", ip: `4ab:cd::${i + 1}`, cols: 80, rows: 24 },
          close: (code: number, why: string) => closed.push([code, why]),
          sendBinary: () => 0,
          send: () => 0,
          getBufferedAmount: () => 0,
        }) as unknown as Ws,
    );
    try {
      for (const ws of sockets) terminals.websocket.open(ws);
      expect(terminals.count).toBe(4);
      expect(closed).toEqual([[1013, "at most 4 terminal sessions"]]);
      const env = from("4ab:cd::1", () => true);
      const { app } = withPassword({ terminals, terminalAllow: ["4ab:cd::/64"] });
      const s = await login(app, "admin-pw", env);
      const res = await app.request(
        `http://vm1/terminal/ws?csrf=${s.csrf}`,
        { headers: { cookie: s.cookie, origin: "http://vm1" } },
        env,
      );
      expect(res.status).toBe(503);
    } finally {
      for (const ws of sockets) terminals.websocket.close(ws, 1000);
    }
    expect(terminals.count).toBe(0);
  });
});

describe("bind addresses", () => {
  test("loopback always, wildcard replaces loopback of its family, no duplicates", () => {
    expect(bindAddresses([])).toEqual(["127.0.0.1", "::1"]);
    expect(bindAddresses(["0.0.0.0"])).toEqual(["::1", "0.0.0.0"]);
    expect(bindAddresses(["::", "127.0.0.1", "4ab::1"])).toEqual(["127.0.0.1", "::", "4ab::1"]);
  });
});
