/**
 * UI sessions, roles, CSRF tokens and the login rate limit. Pure: the clock
 * and the random source are passed in, so every rule is unit-tested without
 * waiting. The password check itself (Bun.password.verify) is done by the
 * app; this module only decides who may try and what a session may do.
 */
import ipaddr from "ipaddr.js";

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

/** Rate-limit options: at most `perSource` failed logins per source in `windowMs`. */
export interface LimitOptions {
  perSource?: number;
  windowMs?: number;
  /** Most sources remembered; the one failed longest ago is forgotten first. Default 10,000. */
  maxSources?: number;
  now?: () => number;
}

/**
 * Pure: the source a login attempt is counted under. An IPv4 address (also
 * IPv4-mapped IPv6) is one source; an IPv6 address counts as its /64 (a
 * mycelium node owns its whole /64, so per address it would have 2^64 tries);
 * every loopback address is one source (any local process can use any of
 * 127.0.0.0/8). Anything unparsable counts as itself.
 */
export function loginSource(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  let a = ipaddr.parse(ip);
  if (a.kind() === "ipv6" && (a as ipaddr.IPv6).isIPv4MappedAddress())
    a = (a as ipaddr.IPv6).toIPv4Address();
  if (a.range() === "loopback") return "loopback";
  if (a.kind() === "ipv4") return a.toString();
  const p = (a as ipaddr.IPv6).parts.slice(0, 4).map((x) => x.toString(16));
  return `${p.join(":")}::/64`;
}

/**
 * Failed logins per source in a sliding window. An attempt is reserved
 * (counted as a failure) before the password is checked, in the same step
 * as the check, so parallel attempts are counted at once and cannot all get
 * through; a right password then clears its source's count. Limits are per
 * source only: failures from other sources never block a source, so no
 * client can lock the admin out (the password check's own cost bounds how
 * fast many sources together can guess).
 */
export function createLoginLimiter(o: LimitOptions = {}) {
  const perSource = o.perSource ?? 5;
  const windowMs = o.windowMs ?? 60_000;
  const maxSources = o.maxSources ?? 10_000;
  const now = o.now ?? Date.now;
  /** Source → times of its failures (and attempts under way) in the window, oldest first. */
  const failures = new Map<string, number[]>();
  const recent = (key: string): number[] => {
    const t = now();
    const xs = (failures.get(key) ?? []).filter((x) => x > t - windowMs);
    if (xs.length) failures.set(key, xs);
    else failures.delete(key);
    return xs;
  };
  return {
    /**
     * Before checking a password from `ip`: null when it may try (the attempt
     * is then counted as a failure until `succeed`), else the seconds to wait.
     */
    attempt(ip: string): number | null {
      const key = loginSource(ip);
      const mine = recent(key);
      if (mine.length >= perSource) {
        const oldest = mine[mine.length - perSource] as number;
        return Math.max(1, Math.ceil((oldest + windowMs - now()) / 1000));
      }
      // Re-insert: Map order is then the source that failed longest ago first.
      failures.delete(key);
      failures.set(key, [...mine, now()]);
      while (failures.size > maxSources) {
        const k = failures.keys().next().value;
        if (k === undefined) break;
        failures.delete(k);
      }
      return null;
    },
    /** The password was right: the source's failures are forgotten. */
    succeed(ip: string): void {
      failures.delete(loginSource(ip));
    },
    /** Failures (and attempts under way) counted for `ip`'s source now. */
    count(ip: string): number {
      return recent(loginSource(ip)).length;
    },
  };
}

/** A login rate limiter. */
export type LoginLimiter = ReturnType<typeof createLoginLimiter>;

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
