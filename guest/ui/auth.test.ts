import { describe, expect, test } from "bun:test";
import {
  cookieValue,
  createLoginLimiter,
  createSessions,
  loginSource,
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
  test("per source: 5 attempts per window, then a wait that ends with the window", () => {
    let t = 0;
    const l = createLoginLimiter({ perSource: 5, windowMs: 60_000, now: () => t });
    for (let i = 0; i < 5; i++) {
      expect(l.attempt("10.0.0.1")).toBeNull();
      t += 1000;
    }
    expect(l.attempt("10.0.0.1")).toBe(55); // the first attempt (t=0) leaves the window at 60 s
    expect(l.attempt("10.0.0.2")).toBeNull();
    t = 60_001;
    expect(l.attempt("10.0.0.1")).toBeNull();
  });

  test("an attempt is counted when it is allowed, before the password is checked", () => {
    const l = createLoginLimiter({ perSource: 5, now: () => 0 });
    // 100 attempts at once (none has finished its password check yet): 5 go through.
    const allowed = Array.from({ length: 100 }, () => l.attempt("4ab:cd::1")).filter(
      (w) => w === null,
    );
    expect(allowed.length).toBe(5);
    expect(l.count("4ab:cd::1")).toBe(5);
  });

  test("a right password clears its source only", () => {
    const l = createLoginLimiter({ perSource: 2, now: () => 0 });
    l.attempt("10.0.0.1");
    l.attempt("10.0.0.2");
    l.succeed("10.0.0.1");
    expect(l.count("10.0.0.1")).toBe(0);
    expect(l.count("10.0.0.2")).toBe(1);
  });

  test("failures of other sources never block a source", () => {
    const l = createLoginLimiter({ perSource: 5, now: () => 0 });
    for (let i = 0; i < 1000; i++) for (let j = 0; j < 6; j++) l.attempt(`4${i.toString(16)}::1`);
    expect(l.attempt("4ff:1::1")).toBeNull();
    expect(l.attempt("127.0.0.1")).toBeNull();
  });

  test("sources: IPv4 address, IPv6 /64, all loopback as one", () => {
    expect(loginSource("10.0.0.1")).toBe("10.0.0.1");
    expect(loginSource("::ffff:10.0.0.1")).toBe("10.0.0.1");
    expect(loginSource("4ab:cd:1:2:3:4:5:6")).toBe("4ab:cd:1:2::/64");
    expect(loginSource("4ab:cd:1:2::99")).toBe("4ab:cd:1:2::/64");
    expect(loginSource("4ab:cd:1:3::1")).toBe("4ab:cd:1:3::/64");
    for (const ip of ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"])
      expect(loginSource(ip)).toBe("loopback");
    expect(loginSource("garbage")).toBe("garbage");
    // Many addresses of one /64 (one mycelium node) share one count.
    const l = createLoginLimiter({ perSource: 5, now: () => 0 });
    const tries = Array.from({ length: 50 }, (_, i) => l.attempt(`4ab:cd:1:2::${i + 1}`));
    expect(tries.filter((w) => w === null).length).toBe(5);
  });

  test("memory: at most maxSources sources are remembered", () => {
    const l = createLoginLimiter({ perSource: 1, maxSources: 3, now: () => 0 });
    for (const ip of ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]) l.attempt(ip);
    expect(l.count("10.0.0.1")).toBe(0); // forgotten first
    expect(l.count("10.0.0.4")).toBe(1);
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
