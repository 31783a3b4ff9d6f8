/** Polling with a deadline, for tests that wait on another process or a VM. */

/**
 * Polls `check` (every `everyMs`) until it returns a value other than
 * undefined or false; throws after the deadline, naming `what`, the last
 * error `check` threw, and `detail()` (e.g. the daemon's output so far).
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs: number,
  everyMs = 1000,
  detail?: () => string,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v as T;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}: not within ${timeoutMs} ms${last ? ` (last error: ${last})` : ""}${detail ? `\n${detail()}` : ""}`,
      );
    await Bun.sleep(everyMs);
  }
}
