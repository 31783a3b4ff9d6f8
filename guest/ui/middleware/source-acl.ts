/**
 * The first check on every request: the client address. Loopback, mycelium
 * and the configured CIDRs pass (and the address is kept as `ip` for the
 * rest); anything else, including a request whose address is unknown, gets
 * 403 with the reason, before any session, body or route is looked at.
 */
import { createMiddleware } from "hono/factory";
import { isAllowedClient, parseCidrs } from "../../../lib/net-acl.ts";
import type { UiApp } from "../http.ts";

/** The source ACL; `allow`: extra client CIDRs besides loopback and mycelium. */
export function sourceAcl(allow: readonly string[]) {
  const extra = parseCidrs(allow);
  return createMiddleware<UiApp>(async (c, next) => {
    const ip = c.env?.requestIP?.(c.req.raw)?.address;
    if (!isAllowedClient(ip, extra))
      return c.json(
        { error: "forbidden", reason: `client ${ip ?? "unknown"} is not allowed` },
        403,
      );
    c.set("ip", ip as string);
    await next();
  });
}
