/**
 * A full garbage collection after every so many bytes of log traffic. JSC
 * starts a full collection when its heap has grown by a factor of what was
 * live after the last one; log traffic makes garbage the heap hardly sees
 * (line strings kept in the ring for seconds and then evicted, the stream
 * machinery of every chunk sent to a log client), so between two
 * collections PID 1's RSS climbed 20–30 MB under a flood or a burst of log
 * clients, and did not come back down at once. Collecting after a fixed
 * number of bytes bounds that climb; the cost is one full collection
 * (8–15 ms with the UI's heap) per `every` bytes, nothing while logs are
 * quiet. Measured in docs/security.md, "The memory target of issue 13". Pure:
 * `collect` is given.
 */

/** Counts bytes; calls `collect` once each time `every` more have passed. */
export function createGcHint(every: number, collect: () => void): (bytes: number) => void {
  let since = 0;
  return (bytes) => {
    since += bytes;
    if (since < every) return;
    since = 0;
    collect();
  };
}

/** A full, synchronous collection (Bun.gc(false) only schedules one, which did not help). */
export const fullCollection = (): void => {
  Bun.gc(true);
};
