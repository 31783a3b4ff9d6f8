/**
 * UI sessions, roles, CSRF tokens and the login rate limit. Pure: the clock
 * and the random source are passed in, so every rule is unit-tested without
 * waiting. The password check itself (Bun.password.verify) is done by the
 * app; this module only decides who may try and what a session may do.
 */

/** admin: everything; readonly: look, never act. */
export type Role = "admin" | "readonly";

/** A logged-in browser or script. */
export interface Session {
  id: string;
  role: Role;
  /** Sent back with every POST (form field `csrf` or header X-CSRF-Token). */
  csrf: string;
  /** The client address the session was created from (shown in logs). */
  ip: string;
  expires: number;
}

/** Session store options. */
export interface SessionOptions {
  /** Idle lifetime; each use extends it. Default 12 h. */
  ttlMs?: number;
  /** Most sessions kept; the oldest is dropped first. Default 64. */
  max?: number;
  now?: () => number;
  /** 32 random bytes as hex (crypto in production, deterministic in tests). */
  token?: () => string;
}

/** Cookie name of the session id. */
export const SESSION_COOKIE = "hero_session";

/** Creates an in-memory session store (sessions end with the process, by design). */
export function createSessions(o: SessionOptions = {}) {
  const ttl = o.ttlMs ?? 12 * 3600_000;
  const max = o.max ?? 64;
  const now = o.now ?? Date.now;
  const token = o.token ?? randomToken;
  const byId = new Map<string, Session>();
  return {
    create(role: Role, ip: string): Session {
      while (byId.size >= max) {
        const oldest = byId.keys().next().value;
        if (oldest === undefined) break;
        byId.delete(oldest);
      }
      const s: Session = { id: token(), role, csrf: token(), ip, expires: now() + ttl };
      byId.set(s.id, s);
      return s;
    },
    /** The live session for an id, extended; null when unknown or expired. */
    get(id: string | undefined): Session | null {
      if (!id) return null;
      const s = byId.get(id);
      if (!s) return null;
      if (s.expires <= now()) {
        byId.delete(id);
        return null;
      }
      s.expires = now() + ttl;
      // Re-insert: Map order is then least-recently-used first.
      byId.delete(id);
      byId.set(id, s);
      return s;
    },
    destroy(id: string): void {
      byId.delete(id);
    },
    get size(): number {
      return byId.size;
    },
  };
}

/** A session store. */
export type Sessions = ReturnType<typeof createSessions>;

/** 32 random bytes, hex. */
export function randomToken(): string {
  const b = new Uint8Array(32);
  crypto.getRandomValues(b);
  return Buffer.from(b).toString("hex");
}

/** Constant-time string equality (CSRF tokens, agent tokens). */
export function safeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < Math.max(x.length, y.length); i++) diff |= (x[i] ?? 0) ^ (y[i] ?? 0);
  return diff === 0;
}

/** Rate-limit options: at most `perClient` failures per client and `global` in all per window. */
export interface LimitOptions {
  perClient?: number;
  global?: number;
  windowMs?: number;
  now?: () => number;
}

/**
 * Login attempts: failures are counted per client address and globally (a
 * mycelium attacker can use many addresses), in a fixed window. Successes
 * clear the client's count.
 */
export function createLoginLimiter(o: LimitOptions = {}) {
  const perClient = o.perClient ?? 5;
  const global = o.global ?? 30;
  const windowMs = o.windowMs ?? 60_000;
  const now = o.now ?? Date.now;
  const failures = new Map<string, number[]>();
  let all: number[] = [];
  const recent = (xs: number[]) => xs.filter((t) => t > now() - windowMs);
  return {
    /** null when the client may try now, else the seconds to wait. */
    check(ip: string): number | null {
      all = recent(all);
      const mine = recent(failures.get(ip) ?? []);
      if (mine.length) failures.set(ip, mine);
      else failures.delete(ip);
      const blocking =
        mine.length >= perClient ? mine : all.length >= global ? all : (null as number[] | null);
      if (!blocking) return null;
      const first = blocking[blocking.length - (blocking === mine ? perClient : global)] ?? now();
      return Math.max(1, Math.ceil((first + windowMs - now()) / 1000));
    },
    fail(ip: string): void {
      const t = now();
      all.push(t);
      failures.set(ip, [...(failures.get(ip) ?? []), t]);
      // Bound memory: forget the oldest clients beyond 1,000.
      while (failures.size > 1000) {
        const k = failures.keys().next().value;
        if (k === undefined) break;
        failures.delete(k);
      }
    },
    succeed(ip: string): void {
      failures.delete(ip);
    },
  };
}

/** What an unauthenticated or authenticated client may do, given the config. */
export interface AccessPolicy {
  /** Admin password configured: logins possible, sessions required. */
  hasPassword: boolean;
}

/**
 * The role of a request: its session's role; without a session, read-only
 * for loopback clients when no password is configured (the "no default
 * password" rule), otherwise none.
 */
export function roleFor(
  policy: AccessPolicy,
  session: Session | null,
  isLoopback: boolean,
): Role | null {
  if (session) return session.role;
  if (!policy.hasPassword && isLoopback) return "readonly";
  return null;
}

/** Pure: one cookie's value from a Cookie header. */
export function cookieValue(header: string | null | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Pure: the Set-Cookie value of a session (Secure only where the request came over TLS). */
export function sessionCookie(id: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAgeS}${secure ? "; Secure" : ""}`;
}
