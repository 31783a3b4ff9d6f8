/**
 * One subscription to the log ring for all live log followers, however
 * many: each new line is handed only to the followers of its service and to
 * those of all services, and the ring is subscribed to only while someone
 * listens (so a ring without followers does no work per line).
 */
import type { LogLine } from "../supervisor/logs.ts";

type Listener = (l: LogLine) => void;

/** A hub over `subscribe` (the ring's; returns the unsubscribe). */
export function createLogHub(subscribe: (fn: Listener) => () => void) {
  /** Service (undefined: all services) → its live followers. */
  const listeners = new Map<string | undefined, Set<Listener>>();
  let unsubRing: (() => void) | null = null;
  const dispatch = (l: LogLine) => {
    for (const f of listeners.get(l.service) ?? []) f(l);
    for (const f of listeners.get(undefined) ?? []) f(l);
  };
  return {
    /** Calls `fn` with every new line of `service` (of all when undefined); returns the unsubscribe. */
    listen(service: string | undefined, fn: Listener): () => void {
      let set = listeners.get(service);
      if (!set) {
        set = new Set();
        listeners.set(service, set);
      }
      set.add(fn);
      unsubRing ??= subscribe(dispatch);
      return () => {
        set.delete(fn);
        // A second call, after the service's set was dropped, must not drop a newer one.
        if (set.size === 0 && listeners.get(service) === set) listeners.delete(service);
        if (listeners.size === 0) {
          unsubRing?.();
          unsubRing = null;
        }
      };
    },
    /** Whether the hub holds its subscription to the ring now. */
    get subscribed(): boolean {
      return unsubRing !== null;
    },
  };
}
