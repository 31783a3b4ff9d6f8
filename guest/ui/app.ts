/**
 * The status UI and its JSON API on :9999 (Hono). Runtime-free: the client
 * address and the WebSocket upgrade come from `c.env` (Bun's server in
 * production, a stub in tests), so it is tested with `app.request`.
 *
 * Order of checks on every request: source address (loopback, mycelium,
 * configured CIDRs; else 403) → session/role (no password configured:
 * read-only on loopback only) → CSRF token and Origin on every POST →
 * role for actions (admin). See docs/api.md.
 *
 * Log output (SSE followers, JSON log pages) goes through follow.ts: bytes
 * are counted after encoding, per client and in total, so clients that do
 * not read cannot make PID 1 buffer without bound.
 */

import type { Context } from "hono";
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { log } from "../../lib/log.ts";
import { isAllowedClient, isLoopbackClient, parseCidrs } from "../../lib/net-acl.ts";
import { VERSION } from "../../lib/version.ts";
import type { LogLine } from "../supervisor/logs.ts";
import { ASSETS } from "./assets.ts";
import {
  cookieValue,
  createLoginLimiter,
  createSessions,
  type Role,
  roleFor,
  SESSION_COOKIE,
  type Session,
  type Sessions,
  safeEqual,
  sessionCookie,
} from "./auth.ts";
import {
  type ByteQueue,
  byteStream,
  createBudget,
  createEventCache,
  createFollower,
  createOutbox,
  createPage,
  createScheduler,
} from "./follow.ts";
import {
  errorPage,
  loginPage,
  overviewPage,
  sameOriginPath,
  servicePage,
  servicesPage,
  terminalPage,
  updatesPage,
  type Viewer,
} from "./pages.ts";
import type { Action, UiSource } from "./source.ts";
import type { TerminalData, Terminals } from "./terminal.ts";

/** What the server passes as `env`: Bun's server, or a test stub. */
export interface UiEnv {
  requestIP(req: Request): { address: string } | null;
  upgrade?(req: Request, opts: { data: TerminalData }): boolean;
  /** Bun: the idle timeout of one request's connection (a dropped log client is closed soon). */
  timeout?(req: Request, seconds: number): void;
}

/** What the app needs. */
export interface UiDeps {
  hostname(): string;
  uptime(): number;
  /** Extra client CIDRs allowed besides loopback and mycelium. */
  allow: readonly string[];
  /** mycelium's state and address (null when the VM has no [mycelium]). */
  mycelium?: () => unknown;
  /** The data and actions; without it only /health exists. */
  source?: UiSource;
  /** Bun.password hashes from vm.toml [ui]. */
  passwordHash?: string;
  readonlyPasswordHash?: string;
  /** The debug terminal manager; absent = disabled. */
  terminals?: Terminals | null;
  sessions?: Sessions;
  limiter?: ReturnType<typeof createLoginLimiter>;
  /** Most concurrent SSE log followers (default 256). */
  maxFollowers?: number;
  /** Most JSON log pages being sent at once (default 64). */
  maxPages?: number;
  /**
   * SSE heartbeat period (default 15 s; Bun's idleTimeout is 255 s at most); a log
   * client that takes nothing for a whole period while bytes wait for it is dropped.
   */
  heartbeatMs?: number;
  /** Most bytes queued for one log client, counted after encoding (default 32 KiB). */
  logClientBytes?: number;
  /** Most bytes queued for all log clients together (default 4 MiB). */
  logTotalBytes?: number;
  /** Most bytes of one JSON log page (default 256 KiB). */
  logPageBytes?: number;
}

/** Most lines of one JSON log page (and the default of `?limit=`). */
export const LOG_PAGE_LINES = 1000;

type C = Context<{
  Bindings: UiEnv;
  Variables: { ip: string; session: Session | null; role: Role | null };
}>;

const ACTIONS = new Set<Action>(["start", "stop", "restart", "kill"]);
const SESSION_TTL_S = 12 * 3600;

const SECURITY_HEADERS: Record<string, string> = {
  "Content-Security-Policy":
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  // same-origin, not no-referrer: with no-referrer, Chromium sends `Origin: null` on form POSTs.
  "Referrer-Policy": "same-origin",
  "X-Frame-Options": "DENY",
  "Cache-Control": "no-store",
};

/** Builds the app. */
export function createApp(deps: UiDeps) {
  const extra = parseCidrs(deps.allow);
  const sessions = deps.sessions ?? createSessions();
  const limiter = deps.limiter ?? createLoginLimiter();
  const policy = { hasPassword: Boolean(deps.passwordHash) };
  const maxFollowers = deps.maxFollowers ?? 256;
  const heartbeatMs = deps.heartbeatMs ?? 15_000;
  const perClient = deps.logClientBytes ?? 32 * 1024;
  const budget = createBudget(deps.logTotalBytes ?? 4 * 1024 * 1024);
  const pageBytes = deps.logPageBytes ?? 256 * 1024;
  const maxPages = deps.maxPages ?? 64;
  let followers = 0;
  let pages = 0;
  const app = new Hono<{
    Bindings: UiEnv;
    Variables: { ip: string; session: Session | null; role: Role | null };
  }>();

  app.use("*", async (c, next) => {
    const ip = c.env?.requestIP?.(c.req.raw)?.address;
    if (!isAllowedClient(ip, extra)) {
      c.res = c.json(
        { error: "forbidden", reason: `client ${ip ?? "unknown"} is not allowed` },
        403,
      );
    } else {
      const session = sessions.get(cookieValue(c.req.header("cookie"), SESSION_COOKIE));
      c.set("ip", ip as string);
      c.set("session", session);
      c.set("role", roleFor(policy, session, isLoopbackClient(ip)));
      await next();
    }
    for (const [k, v] of Object.entries(SECURITY_HEADERS))
      if (!c.res.headers.has(k)) c.res.headers.set(k, v);
  });
  app.use(
    "*",
    bodyLimit({
      maxSize: 64 * 1024,
      onError: (c) => c.json({ error: "request body too large (64 KiB max)" }, 413),
    }),
  );

  app.get("/health", (c) =>
    c.json({
      status: "ok",
      version: VERSION,
      hostname: deps.hostname(),
      uptime: deps.uptime(),
      mycelium: deps.mycelium?.() ?? null,
    }),
  );

  // Embedded assets (no CDN: the UI works offline).
  const asset = (body: string, type: string) => (c: C) =>
    c.body(body, 200, { "Content-Type": type, "Cache-Control": "public, max-age=3600" });
  app.get("/assets/app.css", asset(ASSETS.appCss, "text/css; charset=utf-8"));
  app.get("/assets/app.js", asset(ASSETS.appJs, "text/javascript; charset=utf-8"));
  app.get("/assets/xterm.css", asset(ASSETS.xtermCss, "text/css; charset=utf-8"));
  app.get("/assets/xterm.js", asset(ASSETS.xtermJs, "text/javascript; charset=utf-8"));

  const source = deps.source;
  if (!source) {
    app.notFound((c) => c.json({ error: "not found" }, 404));
    return app;
  }

  const isApi = (c: C) => c.req.path.startsWith("/api/");
  const viewer = (c: C): Viewer => ({
    role: c.get("role") as Role,
    csrf: c.get("session")?.csrf ?? null,
    loggedIn: c.get("session") !== null,
    terminal: Boolean(deps.terminals),
  });
  const refuse = (c: C, status: 401 | 403 | 404 | 400 | 429 | 501 | 503, message: string) =>
    isApi(c)
      ? c.json({ error: message }, status)
      : c.html(errorPage(c.get("role") ? viewer(c) : null, String(status), message), status);

  /** Login: the only page reachable without a role. */
  const login = async (c: C, password: unknown) => {
    const ip = c.get("ip");
    if (!deps.passwordHash)
      return refuse(c, 403, "no UI password is configured: the UI is read-only on loopback only");
    // Counted before the (slow) password check, so parallel attempts cannot all get through.
    const wait = limiter.attempt(ip);
    if (wait !== null) {
      c.header("Retry-After", String(wait));
      return refuse(c, 429, `too many failed logins: retry in ${wait} s`);
    }
    let role: Role | null = null;
    if (typeof password === "string" && password.length > 0 && password.length <= 1024) {
      if (await verify(password, deps.passwordHash)) role = "admin";
      else if (deps.readonlyPasswordHash && (await verify(password, deps.readonlyPasswordHash)))
        role = "readonly";
    }
    if (!role) {
      log.warn("ui", `failed login from ${ip}`);
      if (isApi(c)) return c.json({ error: "wrong password" }, 401);
      return c.html(loginPage("Wrong password."), 401);
    }
    limiter.succeed(ip);
    const s = sessions.create(role, ip);
    log.info("ui", `${role} logged in from ${ip}`);
    c.header(
      "Set-Cookie",
      sessionCookie(s.id, SESSION_TTL_S, new URL(c.req.url).protocol === "https:"),
    );
    return isApi(c) ? c.json({ role, csrf: s.csrf }) : c.redirect("/", 303);
  };

  // CSRF: every POST carries the session's token (form field or header) and, when the
  // browser sends one, an Origin equal to the page's own. Login has no session yet: Origin only.
  app.post("*", async (c, next) => {
    const origin = c.req.header("origin");
    if (origin && origin !== "null" && origin !== new URL(c.req.url).origin)
      return refuse(c, 403, `cross-origin request from ${origin} refused`);
    if (origin === "null") return refuse(c, 403, "request from an opaque origin refused");
    if (c.req.path === "/login" || c.req.path === "/api/v1/login") return next();
    const s = c.get("session");
    if (!s) return refuse(c, 401, "log in first");
    let token = c.req.header("x-csrf-token");
    if (
      !token &&
      (c.req.header("content-type") ?? "").includes("application/x-www-form-urlencoded")
    ) {
      const f = await c.req.parseBody();
      token = typeof f.csrf === "string" ? f.csrf : undefined;
    }
    if (!token || !safeEqual(token, s.csrf)) return refuse(c, 403, "missing or wrong CSRF token");
    return next();
  });

  app.get("/login", (c) => {
    if (!deps.passwordHash)
      return refuse(c, 403, "no UI password is configured: the UI is read-only on loopback only");
    return c.html(loginPage(null));
  });
  app.post("/login", async (c) => {
    const f = await c.req.parseBody();
    return login(c, f.password);
  });
  app.post("/api/v1/login", async (c) => {
    const body = await c.req.json().catch(() => null);
    return login(c, (body as { password?: unknown } | null)?.password);
  });
  const logout = (c: C) => {
    const s = c.get("session");
    if (s) sessions.destroy(s.id);
    c.header("Set-Cookie", sessionCookie("", 0, false));
    return isApi(c) ? c.json({ ok: true }) : c.redirect("/login", 303);
  };
  app.post("/logout", logout);
  app.post("/api/v1/logout", logout);

  // Everything below needs a role.
  app.use("*", async (c, next) => {
    if (c.get("role")) return next();
    if (!deps.passwordHash)
      return refuse(c, 403, "no UI password is configured: the UI is read-only on loopback only");
    if (!isApi(c) && c.req.method === "GET") return c.redirect("/login", 303);
    return refuse(c, 401, "log in first");
  });
  const needAdmin = (c: C) =>
    c.get("role") === "admin" ? null : refuse(c, 403, "this needs the admin role");

  app.get("/api/v1/session", (c) =>
    c.json({ role: c.get("role"), csrf: c.get("session")?.csrf ?? null }),
  );
  app.get("/api/v1/overview", (c) => c.json(source.overview()));
  app.get("/api/v1/services", (c) => c.json(source.services()));
  app.get("/api/v1/services/:name", (c) => {
    const s = source.service(c.req.param("name"));
    return s ? c.json(s) : refuse(c, 404, `no service "${c.req.param("name")}"`);
  });
  app.get("/api/v1/updates", (c) => c.json(source.updates()));
  app.get("/api/v1/boot-log", (c) => c.json(source.bootLog()));

  // Logs: a page of JSON lines after a sequence number, or a live SSE stream.
  const logs = (c: C, service: string | undefined) => {
    if (service !== undefined && !source.service(service))
      return refuse(c, 404, `no service "${service}"`);
    const after = Number(c.req.header("last-event-id") ?? c.req.query("after") ?? 0);
    const from = Number.isSafeInteger(after) && after >= 0 ? after : 0;
    if (!(c.req.header("accept") ?? "").includes("text/event-stream")) {
      const q = c.req.query("limit");
      const limit = q === undefined ? LOG_PAGE_LINES : Number(q);
      if (!Number.isSafeInteger(limit) || limit < 1 || limit > LOG_PAGE_LINES)
        return refuse(c, 400, `limit must be a whole number from 1 to ${LOG_PAGE_LINES}`);
      if (pages >= maxPages) return refuse(c, 503, `at most ${maxPages} log pages at once`);
      return page(c, service, from, limit);
    }
    if (followers >= maxFollowers) return refuse(c, 503, `at most ${maxFollowers} log followers`);
    return sse(c, service, from);
  };
  app.get("/api/v1/logs", (c) => logs(c, undefined));
  app.get("/api/v1/services/:name/logs", (c) => logs(c, c.req.param("name")));

  // Followers reading the same lines (live ones, and ones catching up together) share their encoding.
  const events = createEventCache(1024 * 1024);
  // Catch-up work in turns of 256 KiB, yielding between them: other requests are never held up long.
  const scheduler = createScheduler(256 * 1024, (run) => setImmediate(run));
  const encodeEvent = (l: LogLine) => events.encode(l);
  /** A queue whose client's connection is closed soon when it is dropped (not after Bun's 255 s). */
  const dropping = (c: C, queue: ByteQueue): ByteQueue => ({
    ...queue,
    abort(reason) {
      queue.abort(reason);
      try {
        c.env?.timeout?.(c.req.raw, 1);
      } catch {}
    },
  });

  // One subscription to the ring for all live followers; each line goes only to its service's.
  const listeners = new Map<string | undefined, Set<(l: LogLine) => void>>();
  let unsubRing: (() => void) | null = null;
  const listen = (service: string | undefined, fn: (l: LogLine) => void) => {
    let set = listeners.get(service);
    if (!set) {
      set = new Set();
      listeners.set(service, set);
    }
    set.add(fn);
    unsubRing ??= source.logs.subscribe((l) => {
      for (const f of listeners.get(l.service) ?? []) f(l);
      for (const f of listeners.get(undefined) ?? []) f(l);
    });
    return () => {
      set.delete(fn);
      if (set.size === 0) listeners.delete(service);
      if (listeners.size === 0) {
        unsubRing?.();
        unsubRing = null;
      }
    };
  };

  const sse = (c: C, service: string | undefined, after: number) => {
    followers++;
    let done = false;
    let f: ReturnType<typeof createFollower> | undefined;
    let out: ReturnType<typeof createOutbox> | undefined;
    let beat: ReturnType<typeof setInterval> | undefined;
    const cleanup = () => {
      if (done) return;
      done = true;
      followers--;
      f?.stop();
      clearInterval(beat);
    };
    const body = byteStream(perClient, {
      start(queue) {
        const o = createOutbox(dropping(c, queue), perClient, budget, cleanup);
        const fl = createFollower(o, {
          after,
          service,
          since: (a, s, n) => source.logs.since(a, s, n),
          subscribe: (fn) => listen(service, fn),
          encode: encodeEvent,
          scheduler,
        });
        out = o;
        f = fl;
        fl.start();
        if (o.open) beat = setInterval(() => fl.tick(), heartbeatMs);
        c.req.raw.signal?.addEventListener("abort", () => o.end(null));
      },
      pull: () => f?.pull(),
      cancel() {
        out?.end(null);
      },
    });
    return new Response(body, {
      headers: {
        "Content-Type": "text/event-stream; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",
      },
    });
  };

  const page = (c: C, service: string | undefined, after: number, maxLines: number) => {
    pages++;
    let done = false;
    let p: ReturnType<typeof createPage> | undefined;
    let out: ReturnType<typeof createOutbox> | undefined;
    let beat: ReturnType<typeof setInterval> | undefined;
    const cleanup = () => {
      if (done) return;
      done = true;
      pages--;
      p?.stop();
      clearInterval(beat);
    };
    const body = byteStream(perClient, {
      start(queue) {
        const o = createOutbox(dropping(c, queue), perClient, budget, cleanup);
        const pg = createPage(o, {
          after,
          service,
          since: (a, s, n) => source.logs.since(a, s, n),
          maxLines,
          maxBytes: pageBytes,
          scheduler,
        });
        out = o;
        p = pg;
        pg.start();
        if (o.open) beat = setInterval(() => pg.tick(), heartbeatMs);
        c.req.raw.signal?.addEventListener("abort", () => o.end(null));
      },
      pull: () => p?.pull(),
      cancel() {
        out?.end(null);
      },
    });
    return new Response(body, { headers: { "Content-Type": "application/json; charset=utf-8" } });
  };

  // Actions: POST only (CSRF-checked above), admin only.
  const act = async (c: C, name: string, action: string, signal?: string) => {
    const no = needAdmin(c);
    if (no) return no;
    if (!ACTIONS.has(action as Action)) return refuse(c, 404, `unknown action "${action}"`);
    if (!source.service(name)) return refuse(c, 404, `no service "${name}"`);
    if (signal !== undefined && !/^(SIG)?[A-Z0-9]{2,10}$/.test(signal))
      return refuse(c, 400, `invalid signal "${signal}"`);
    try {
      await source.action(name, action as Action, signal);
    } catch (e) {
      return refuse(c, 400, `${action} ${name}: ${(e as Error).message}`);
    }
    log.info("ui", `${action} ${name} by ${c.get("role")} from ${c.get("ip")}`);
    return null;
  };
  app.post("/api/v1/services/:name/:action", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as { signal?: unknown };
    const sig = typeof body?.signal === "string" ? body.signal : undefined;
    const r = await act(c, c.req.param("name"), c.req.param("action"), sig);
    return r ?? c.json(source.service(c.req.param("name")));
  });
  app.post("/services/:name/:action", async (c) => {
    const f = await c.req.parseBody();
    const name = c.req.param("name");
    const r = await act(
      c,
      name,
      c.req.param("action"),
      typeof f.signal === "string" ? f.signal : undefined,
    );
    if (r) return r;
    return c.redirect(sameOriginPath(f.back, "/services"), 303);
  });

  // Updates: wired to the updater once it exists.
  const update = async (c: C, what: "check" | "apply" | "rollback") => {
    const no = needAdmin(c);
    if (no) return no;
    if (!source.updater) return refuse(c, 501, "no updater is configured in this VM");
    try {
      const r = await source.updater[what]();
      log.info("ui", `update ${what} by admin from ${c.get("ip")}`);
      return isApi(c) ? c.json(r ?? { ok: true }) : c.redirect("/updates", 303);
    } catch (e) {
      return refuse(c, 400, `${what}: ${(e as Error).message}`);
    }
  };
  for (const what of ["check", "apply", "rollback"] as const) {
    app.post(`/api/v1/updates/${what}`, (c) => update(c, what));
    app.post(`/updates/${what}`, (c) => update(c, what));
  }

  // Pages.
  app.get("/", (c) =>
    c.html(overviewPage(viewer(c), source.overview(), source.services(), source.bootLog())),
  );
  app.get("/services", (c) => c.html(servicesPage(viewer(c), source.services())));
  app.get("/services/:name", (c) => {
    const s = source.service(c.req.param("name"));
    return s
      ? c.html(servicePage(viewer(c), s))
      : refuse(c, 404, `no service "${c.req.param("name")}"`);
  });
  app.get("/updates", (c) => c.html(updatesPage(viewer(c), source.updates())));

  // The debug terminal: enabled by vm.toml, admins only, same origin, CSRF token in the URL.
  const terminalGate = (c: C) => {
    if (!deps.terminals)
      return refuse(c, 404, "the debug terminal is disabled in this VM's config");
    return needAdmin(c);
  };
  app.get("/terminal", (c) => terminalGate(c) ?? c.html(terminalPage(viewer(c))));
  app.get("/terminal/ws", (c) => {
    const no = terminalGate(c);
    if (no) return no;
    const terminals = deps.terminals as Terminals;
    const origin = c.req.header("origin");
    if (!origin || origin !== new URL(c.req.url).origin)
      return refuse(c, 403, "the terminal needs a same-origin WebSocket");
    const s = c.get("session");
    const token = c.req.query("csrf");
    if (!s || !token || !safeEqual(token, s.csrf))
      return refuse(c, 403, "missing or wrong CSRF token");
    if (!terminals.canOpen()) return refuse(c, 503, `at most ${terminals.max} terminal sessions`);
    const cols = Math.min(1000, Math.max(2, Number(c.req.query("cols")) || 80));
    const rows = Math.min(500, Math.max(2, Number(c.req.query("rows")) || 24));
    const ok = c.env.upgrade?.(c.req.raw, {
      data: { kind: "terminal", ip: c.get("ip"), cols, rows },
    });
    if (!ok) return refuse(c, 400, "expected a WebSocket upgrade");
    return new Response(null);
  });

  app.notFound((c) =>
    isApi(c) || !c.get("role")
      ? c.json({ error: "not found" }, 404)
      : c.html(errorPage(viewer(c), "404", "not found"), 404),
  );
  app.onError((err, c) => {
    log.error("ui", `${c.req.method} ${c.req.path}: ${err.message}`);
    return c.json({ error: "internal error" }, 500);
  });
  return app;
}

async function verify(password: string, hash: string): Promise<boolean> {
  try {
    return await Bun.password.verify(password, hash);
  } catch {
    return false;
  }
}
