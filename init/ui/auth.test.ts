import { describe, expect, test } from "bun:test";
import {
  cookieValue,
  createLoginLimiter,
  createSessions,
  roleFor,
  safeEqual,
  sessionCookie,
} from "./auth.ts";

describe("sessions", () => {
  test("expire after the idle ttl; use extends them", () => {
    let t = 0;
    let n = 0;
    const s = createSessions({ ttlMs: 100, now: () => t, token: () => `t${n++}` });
    const a = s.create("admin", "::1");
    t = 90;
    expect(s.get(a.id)?.role).toBe("admin");
    t = 180;
    expect(s.get(a.id)).not.toBeNull();
    t = 281;
    expect(s.get(a.id)).toBeNull();
    expect(s.get(undefined)).toBeNull();
  });

  test("at most `max` sessions: the least recently used goes first", () => {
    let n = 0;
    const s = createSessions({ max: 2, token: () => `t${n++}` });
    const a = s.create("admin", "::1");
    const b = s.create("readonly", "::1");
    s.get(a.id);
    const c = s.create("admin", "::1");
    expect(s.get(b.id)).toBeNull();
    expect(s.get(a.id)).not.toBeNull();
    expect(s.get(c.id)).not.toBeNull();
    expect(s.size).toBe(2);
  });

  test("ids and CSRF tokens differ", () => {
    const s = createSessions().create("admin", "::1");
    expect(s.id).toMatch(/^[0-9a-f]{64}$/);
    expect(s.csrf).not.toBe(s.id);
  });
});

describe("login limiter", () => {
  test("per client: 5 failures per window, then a wait that ends with the window", () => {
    let t = 0;
    const l = createLoginLimiter({ perClient: 5, global: 100, windowMs: 60_000, now: () => t });
    for (let i = 0; i < 5; i++) {
      expect(l.check("a")).toBeNull();
      l.fail("a");
      t += 1000;
    }
    expect(l.check("a")).toBe(55); // the first failure (t=0) leaves the window at 60 s
    expect(l.check("b")).toBeNull();
    t = 60_001;
    expect(l.check("a")).toBeNull();
  });

  test("global: many addresses together are limited too; success clears a client", () => {
    const l = createLoginLimiter({ perClient: 5, global: 3, now: () => 0 });
    l.fail("a");
    l.fail("b");
    expect(l.check("z")).toBeNull();
    l.fail("c");
    expect(l.check("z")).toBeGreaterThan(0);
    const m = createLoginLimiter({ perClient: 2, now: () => 0 });
    m.fail("a");
    m.succeed("a");
    m.fail("a");
    expect(m.check("a")).toBeNull();
  });
});

describe("roles and cookies", () => {
  test("no password: loopback is read-only, others nothing; a session decides otherwise", () => {
    expect(roleFor({ hasPassword: false }, null, true)).toBe("readonly");
    expect(roleFor({ hasPassword: false }, null, false)).toBeNull();
    expect(roleFor({ hasPassword: true }, null, true)).toBeNull();
    const s = createSessions().create("admin", "::1");
    expect(roleFor({ hasPassword: true }, s, false)).toBe("admin");
  });

  test("cookie parsing and the Set-Cookie flags", () => {
    expect(cookieValue("a=1; hero_session=xyz; b=2", "hero_session")).toBe("xyz");
    expect(cookieValue("hero_sessionx=1", "hero_session")).toBeUndefined();
    expect(cookieValue(null, "x")).toBeUndefined();
    expect(sessionCookie("id", 60, false)).toBe(
      "hero_session=id; Path=/; HttpOnly; SameSite=Strict; Max-Age=60",
    );
    expect(sessionCookie("id", 60, true)).toEndWith("; Secure");
  });

  test("safeEqual", () => {
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abd")).toBe(false);
    expect(safeEqual("abc", "abcd")).toBe(false);
    expect(safeEqual("", "")).toBe(true);
  });
});
