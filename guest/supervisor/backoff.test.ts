import { describe, expect, test } from "bun:test";
import { nextRestart, noHistory, type RestartPolicy } from "./backoff.ts";

const policy: RestartPolicy = {
  delay: 100,
  max_delay: 1000,
  reset_after: 10,
  limit: 5,
  window: 60,
};

describe("restart backoff", () => {
  test("first restart fast, then doubling up to the cap", () => {
    let h = noHistory();
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const d = nextRestart({ ...policy, limit: 0 }, h, 1000 * i, 50);
      if (d.giveUp) throw new Error("unexpected give-up");
      delays.push(d.delayMs);
      h = d.history;
    }
    expect(delays).toEqual([100, 200, 400, 800, 1000]);
  });

  test("a stable run resets the backoff", () => {
    const d1 = nextRestart(policy, { times: [], consecutive: 4 }, 0, 10_000);
    expect(d1).toMatchObject({ giveUp: false, delayMs: 100 });
  });

  test("gives up after `limit` restarts within the window, with the reason", () => {
    let h = noHistory();
    for (let i = 0; i < 5; i++) {
      const d = nextRestart(policy, h, i * 1000, 10);
      expect(d.giveUp).toBe(false);
      h = d.history;
    }
    const last = nextRestart(policy, h, 5000, 10);
    expect(last).toMatchObject({
      giveUp: true,
      reason: "gave up: restarted 5 times within 60 s (limit 5)",
    });
  });

  test("restarts older than the window do not count", () => {
    const h = { times: [0, 1000, 2000, 3000, 4000], consecutive: 5 };
    expect(nextRestart(policy, h, 70_000, 10).giveUp).toBe(false);
  });

  test("limit 0 never gives up", () => {
    const h = { times: Array.from({ length: 1000 }, (_, i) => i), consecutive: 1000 };
    expect(nextRestart({ ...policy, limit: 0 }, h, 2000, 1)).toMatchObject({
      giveUp: false,
      delayMs: 1000,
    });
  });
});
