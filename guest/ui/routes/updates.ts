/**
 * Update actions (check, apply, rollback), API and form: POST only (CSRF
 * checked), admins only, 501 when the VM has no updater. The source's
 * updater is read on each request: it may appear after the app is built.
 */
import { Hono } from "hono";
import { log } from "../../../lib/log.ts";
import { updateNow } from "../../../update/now.ts";
import { type C, isApi, type Responder, type UiApp } from "../http.ts";
import type { UiSource } from "../source.ts";

/** POST /api/v1/updates/{check,apply,rollback} and /updates/{check,apply,rollback}. */
export function updateRoutes(source: UiSource, ui: Responder) {
  const app = new Hono<UiApp>();
  const update = async (c: C, what: "check" | "apply" | "rollback") => {
    const no = ui.needAdmin(c);
    if (no) return no;
    if (!source.updater) return ui.refuse(c, 501, "no updater is configured in this VM");
    try {
      // check and apply are update/now.ts's "update now", as for the CLI and node register.
      const u = source.updater;
      const r =
        what === "rollback"
          ? await u.rollback()
          : await updateNow(u, { check: what === "check" }).then((n) =>
              n.timedOut ? null : n.result,
            );
      log.info("ui", `update ${what} by admin from ${c.get("ip")}`);
      return isApi(c) ? c.json(r ?? { ok: true }) : c.redirect("/updates", 303);
    } catch (e) {
      return ui.refuse(c, 400, `${what}: ${(e as Error).message}`);
    }
  };
  for (const what of ["check", "apply", "rollback"] as const) {
    app.post(`/api/v1/updates/${what}`, (c) => update(c, what));
    app.post(`/updates/${what}`, (c) => update(c, what));
  }
  return app;
}
