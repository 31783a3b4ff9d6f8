/**
 * The UI's answer to an exception in a route. Its own module: the UI's
 * front (front.ts) uses it without loading the pages that http.ts imports.
 */
import { log } from "../../lib/log.ts";
import type { C } from "./http.ts";

/** A handler threw: the reason is logged, never sent (it may name paths or state). */
export function internalError(err: Error, c: C): Response {
  log.error("ui", `${c.req.method} ${c.req.path}: ${err.message}`);
  return c.json({ error: "internal error" }, 500);
}
