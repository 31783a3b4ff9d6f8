/**
 * Restart backoff and the give-up limit (pure). zinit restarts every 2 s
 * forever; hero-init restarts the first time fast, doubles the delay up to a
 * cap, resets once a run lasted long enough, and gives up (Failure, with the
 * reason) after too many restarts in a window.
 */

/** The policy (the `restart:` section of a service file, defaults applied). */
export interface RestartPolicy {
  delay: number; // ms
  max_delay: number; // ms
  reset_after: number; // s
  limit: number; // 0 = never give up
  window: number; // s
}

/** What the supervisor remembers between restarts. */
export interface RestartHistory {
  /** Times (ms) of restarts inside the current window. */
  times: number[];
  /** Restarts since the last stable run. */
  consecutive: number;
}

/** A fresh history. */
export const noHistory = (): RestartHistory => ({ times: [], consecutive: 0 });

/** The decision for one exit. */
export type RestartDecision =
  | { giveUp: false; delayMs: number; history: RestartHistory }
  | { giveUp: true; reason: string; history: RestartHistory };

/** Decides when (or whether) to restart after a run of `ranMs` that ended at `now`. */
export function nextRestart(
  p: RestartPolicy,
  h: RestartHistory,
  now: number,
  ranMs: number,
): RestartDecision {
  const consecutive = ranMs >= p.reset_after * 1000 ? 0 : h.consecutive;
  const times = h.times.filter((t) => now - t < p.window * 1000);
  if (p.limit > 0 && times.length >= p.limit) {
    return {
      giveUp: true,
      reason: `gave up: restarted ${times.length} times within ${p.window} s (limit ${p.limit})`,
      history: { times, consecutive },
    };
  }
  const delayMs = Math.min(p.max_delay, p.delay * 2 ** Math.min(consecutive, 30));
  return {
    giveUp: false,
    delayMs,
    history: { times: [...times, now], consecutive: consecutive + 1 },
  };
}
