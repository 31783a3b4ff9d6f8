/**
 * How fast PID 1 takes in a service's output. A service that prints as fast
 * as it can (`yes`) pushes about 1 GB/s through its pipe: every read is a
 * new chunk, every line a new string, and the ring evicts as fast as it
 * fills, so PID 1's allocator churns and keeps tens of MB it never gives
 * back (measured in docs/security.md, "The memory target of issue 13"). A
 * pacer gives each service a rate: once its burst is spent, PID 1 reads its
 * pipes only as fast as the rate allows and the service waits in write(2),
 * as it would on a slow terminal. No line is lost: the pipe holds them. Pure.
 */

/** Bytes of output a service may send per second once its burst is spent (lines cost LINE_COST more). */
export const OUTPUT_RATE = 1024 * 1024;
/** Bytes a quiet service may send at once before the rate applies. */
export const OUTPUT_BURST = 1024 * 1024;
/**
 * What a line costs on top of its bytes: each is a record in the ring and a
 * callback to every follower, so a flood of short lines (`yes` writes
 * "y\n") is paced by its lines, not only by its two bytes each.
 */
export const LINE_COST = 64;

/** A token bucket of output bytes: a charge beyond the tokens becomes a debt, paid by waiting. */
export interface Pacer {
  /** Charges `cost`; returns the milliseconds to wait before reading more (0: read on). */
  charge(cost: number): number;
}

/**
 * A pacer of `rate` bytes per second holding at most `burst` (full at
 * first). `now` is in milliseconds.
 */
export function createPacer(
  rate = OUTPUT_RATE,
  burst = OUTPUT_BURST,
  now: () => number = () => performance.now(),
): Pacer {
  let tokens = burst;
  let at = now();
  return {
    charge(cost) {
      const t = now();
      tokens = Math.min(burst, tokens + ((t - at) * rate) / 1000);
      at = t;
      tokens -= cost;
      return tokens >= 0 ? 0 : Math.ceil((-tokens * 1000) / rate);
    },
  };
}

/** The cost of `bytes` bytes holding `lines` line ends. */
export const outputCost = (bytes: number, lines: number): number => bytes + lines * LINE_COST;
