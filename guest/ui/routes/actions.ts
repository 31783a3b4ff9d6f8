/**
 * Service actions (start, stop, restart, kill): POST only, so the CSRF
 * check has run; admins only. The API answers the service's new state, a
 * form is sent back to its `back` path (only ever a path on this origin).
 */
import { Hono } from "hono";
import { log } from "../../../lib/log.ts";
import type { Answer, C, Responder, UiApp } from "../http.ts";
import { sameOriginPath } from "../pages.ts";
import type { Action, UiSource } from "../source.ts";

const ACTIONS: readonly string[] = ["start", "stop", "restart", "kill"] satisfies Action[];

/** Pure: whether `a` names an action. */
export const isAction = (a: string): a is Action => ACTIONS.includes(a);

/** Pure: whether a signal name may be passed on (SIGTERM, TERM, SIGUSR1; never a shell word). */
export const validSignal = (s: string): boolean => /^(SIG)?[A-Z0-9]{2,10}$/.test(s);

/** POST /api/v1/services/:name/:action (JSON `signal`) and /services/:name/:action (form). */
export function actionRoutes(source: UiSource, ui: Responder) {
  const app = new Hono<UiApp>();
  /** Does the action; null when done, else the refusal. */
  const act = async (
    c: C,
    name: string,
    action: string,
    signal?: string,
  ): Promise<Answer | null> => {
    const no = ui.needAdmin(c);
    if (no) return no;
    if (!isAction(action)) return ui.refuse(c, 404, `unknown action "${action}"`);
    if (!source.service(name)) return ui.refuse(c, 404, `no service "${name}"`);
    if (signal !== undefined && !validSignal(signal))
      return ui.refuse(c, 400, `invalid signal "${signal}"`);
    try {
      await source.action(name, action, signal);
    } catch (e) {
      return ui.refuse(c, 400, `${action} ${name}: ${(e as Error).message}`);
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
    const sig = typeof f.signal === "string" ? f.signal : undefined;
    const r = await act(c, c.req.param("name"), c.req.param("action"), sig);
    return r ?? c.redirect(sameOriginPath(f.back, "/services"), 303);
  });
  return app;
}
