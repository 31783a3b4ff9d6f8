/**
 * The checks in front of every agent route, in this order: the source
 * address (403), the bearer token (401), then the API prefix (404 outside
 * /agent/v1/). The token is compared as sha256 digests in constant time,
 * and it is never logged.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { API_PREFIX } from "../../lib/agent-protocol.ts";
import { peerAddress, sourceRefusal } from "../../lib/net-acl.ts";
import { type AgentHono, type AgentLog, fail } from "./http.ts";

const digest = (s: string) => createHash("sha256").update(s, "utf8").digest();

/**
 * A check of `Authorization: Bearer <token>` against `token`. Digests of
 * equal length are compared: neither the token's length nor its prefix leaks.
 */
export function bearerCheck(token: string): (header: string | null | undefined) => boolean {
  const want = digest(token);
  return (header) => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    return timingSafeEqual(digest(m?.[1] ?? ""), want) && m !== null;
  };
}

/** 403 unless `allow(ip)` (a throwing policy refuses); sets `ip` for later handlers. */
export function sourceAcl(
  allow: (ip: string) => boolean,
  log: AgentLog,
): MiddlewareHandler<AgentHono> {
  return async (c, next) => {
    const ip = peerAddress(() => c.env?.requestIP?.(c.req.raw));
    const refused = sourceRefusal(allow, ip);
    if (refused) {
      log("warn", refused.log);
      return fail(c, 403, refused.error);
    }
    c.set("ip", ip);
    await next();
  };
}

/** 401 without the right bearer token. */
export function tokenAuth(token: string, log: AgentLog): MiddlewareHandler<AgentHono> {
  const ok = bearerCheck(token);
  return async (c, next) => {
    if (!ok(c.req.header("authorization"))) {
      log("warn", `refused ${c.get("ip")}: missing or wrong token`);
      return fail(c, 401, "missing or wrong token (Authorization: Bearer <token>)", {
        "www-authenticate": 'Bearer realm="hero-agent"',
      });
    }
    await next();
  };
}

/**
 * 404 outside the API prefix; inside it, lifts Bun's 10 s idle timeout:
 * long polls, slow commands and big uploads must not hit it.
 */
export function apiOnly(): MiddlewareHandler<AgentHono> {
  return async (c, next) => {
    const path = new URL(c.req.url).pathname;
    if (!path.startsWith(`${API_PREFIX}/`))
      return fail(c, 404, `no such endpoint: ${path} (the API is under ${API_PREFIX}/)`);
    try {
      c.env?.timeout?.(c.req.raw, 0);
    } catch {}
    await next();
  };
}
