/**
 * Login and logout: the only routes reachable without a role. A login is
 * counted against its source's limit before the (slow) password check, so
 * parallel attempts cannot all get through (auth.ts createLoginLimiter).
 */
import { Hono } from "hono";
import { log } from "../../../lib/log.ts";
import { type LoginLimiter, type Role, type Sessions, sessionCookie } from "../auth.ts";
import { type Answer, type C, isApi, NO_PASSWORD, type Responder, type UiApp } from "../http.ts";
import { loginPage } from "../pages.ts";

/** How long a session cookie lives in the browser (the store has its own idle limit). */
const SESSION_TTL_S = 12 * 3600;

/** What login needs. */
export interface LoginDeps {
  ui: Responder;
  sessions: Sessions;
  limiter: LoginLimiter;
  /** Bun.password hashes from vm.toml [ui]; without the admin one, no login exists. */
  passwordHash?: string;
  readonlyPasswordHash?: string;
}

/** The role a password gives (admin first), or null; a password over 1 KiB is never checked. */
export async function passwordRole(
  password: unknown,
  hashes: { admin: string; readonly?: string },
): Promise<Role | null> {
  if (typeof password !== "string" || password.length === 0 || password.length > 1024) return null;
  if (await verify(password, hashes.admin)) return "admin";
  if (hashes.readonly && (await verify(password, hashes.readonly))) return "readonly";
  return null;
}

/** GET/POST /login, POST /api/v1/login, POST /logout and /api/v1/logout. */
export function loginRoutes(d: LoginDeps) {
  const app = new Hono<UiApp>();
  const login = async (c: C, password: unknown): Promise<Response> => {
    const ip = c.get("ip");
    if (!d.passwordHash) return d.ui.refuse(c, 403, NO_PASSWORD);
    const wait = d.limiter.attempt(ip);
    if (wait !== null) {
      c.header("Retry-After", String(wait));
      return d.ui.refuse(c, 429, `too many failed logins: retry in ${wait} s`);
    }
    const role = await passwordRole(password, {
      admin: d.passwordHash,
      readonly: d.readonlyPasswordHash,
    });
    if (!role) {
      log.warn("ui", `failed login from ${ip}`);
      if (isApi(c)) return c.json({ error: "wrong password" }, 401);
      return c.html(loginPage("Wrong password."), 401);
    }
    d.limiter.succeed(ip);
    const s = d.sessions.create(role, ip);
    log.info("ui", `${role} logged in from ${ip}`);
    const secure = new URL(c.req.url).protocol === "https:";
    c.header("Set-Cookie", sessionCookie(s.id, SESSION_TTL_S, secure));
    return isApi(c) ? c.json({ role, csrf: s.csrf }) : c.redirect("/", 303);
  };
  const logout = (c: C): Answer => {
    const s = c.get("session");
    if (s) d.sessions.destroy(s.id);
    c.header("Set-Cookie", sessionCookie("", 0, false));
    return isApi(c) ? c.json({ ok: true }) : c.redirect("/login", 303);
  };

  app.get("/login", (c) =>
    d.passwordHash ? c.html(loginPage(null)) : d.ui.refuse(c, 403, NO_PASSWORD),
  );
  app.post("/login", async (c) => login(c, (await c.req.parseBody()).password));
  app.post("/api/v1/login", async (c) => {
    const body = await c.req.json().catch(() => null);
    return login(c, (body as { password?: unknown } | null)?.password);
  });
  app.post("/logout", logout);
  app.post("/api/v1/logout", logout);
  return app;
}

async function verify(password: string, hash: string): Promise<boolean> {
  try {
    return await Bun.password.verify(password, hash);
  } catch {
    return false;
  }
}
