import { describe, expect, test } from "bun:test";
import type { LogLine } from "../supervisor/logs.ts";
import { createLogHub } from "./log-hub.ts";

/** A ring stand-in: counts subscriptions, and `emit` hands a line to the current subscriber. */
function ring() {
  let fn: ((l: LogLine) => void) | null = null;
  const r = {
    subscriptions: 0,
    subscribe(f: (l: LogLine) => void) {
      r.subscriptions++;
      fn = f;
      return () => {
        fn = null;
      };
    },
    emit: (service: string, seq: number) =>
      fn?.({ seq, service, stream: "stdout", text: `${service} ${seq}`, time: 0 }),
    get live() {
      return fn !== null;
    },
  };
  return r;
}

describe("log hub", () => {
  test("one ring subscription for all listeners; each line to its service's and to all's", () => {
    const r = ring();
    const hub = createLogHub(r.subscribe);
    const got: string[] = [];
    const stopWeb = hub.listen("web", (l) => got.push(`web-listener ${l.seq}`));
    hub.listen("db", (l) => got.push(`db-listener ${l.seq}`));
    hub.listen(undefined, (l) => got.push(`all-listener ${l.seq}`));
    expect(r.subscriptions).toBe(1);
    r.emit("web", 1);
    r.emit("db", 2);
    r.emit("cache", 3);
    expect(got).toEqual([
      "web-listener 1",
      "all-listener 1",
      "db-listener 2",
      "all-listener 2",
      "all-listener 3",
    ]);
    stopWeb();
    got.length = 0;
    r.emit("web", 4);
    expect(got).toEqual(["all-listener 4"]);
  });

  test("the ring is let go when the last listener leaves, and taken again for the next", () => {
    const r = ring();
    const hub = createLogHub(r.subscribe);
    expect(hub.subscribed).toBe(false);
    const a = hub.listen("web", () => {});
    const b = hub.listen("web", () => {});
    a();
    expect(hub.subscribed).toBe(true);
    b();
    expect(hub.subscribed).toBe(false);
    expect(r.live).toBe(false);
    const seen: number[] = [];
    hub.listen("web", (l) => seen.push(l.seq));
    expect(r.subscriptions).toBe(2);
    // A stale unsubscribe, called again, leaves the new listener alone.
    a();
    b();
    r.emit("web", 9);
    expect(seen).toEqual([9]);
    expect(hub.subscribed).toBe(true);
  });
});
