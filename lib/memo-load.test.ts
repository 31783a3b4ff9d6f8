import { describe, expect, test } from "bun:test";
import { memoLoad } from "./memo-load.ts";

describe("memoLoad", () => {
  test("callers share one load, started by the first call", async () => {
    let calls = 0;
    const get = memoLoad(async () => ++calls);
    expect(calls).toBe(0);
    expect(await Promise.all([get(), get()])).toEqual([1, 1]);
    expect(await get()).toBe(1);
    expect(calls).toBe(1);
  });

  test("a failed load (thrown or rejected) is forgotten: the next call tries again", async () => {
    let calls = 0;
    const get = memoLoad(() => {
      calls++;
      if (calls === 1) throw new Error("sync failure");
      if (calls === 2) return Promise.reject(new Error("missing chunk"));
      return Promise.resolve("ok");
    });
    await expect(get()).rejects.toThrow("sync failure");
    await expect(get()).rejects.toThrow("missing chunk");
    expect(await get()).toBe("ok");
    expect(await get()).toBe("ok");
    expect(calls).toBe(3);
  });
});
