/** slots.ts: the shared exec limit. */
import { expect, test } from "bun:test";
import { ExecSlots } from "./slots.ts";

test("takes up to max slots, then refuses until one is released", () => {
  const s = new ExecSlots(2);
  expect(s.take()).toBe(true);
  expect(s.take()).toBe(true);
  expect(s.take()).toBe(false);
  expect(s.running).toBe(2);
  s.release();
  expect(s.running).toBe(1);
  expect(s.take()).toBe(true);
  expect(s.busyMessage).toBe("too many execs running (limit 2)");
});

test("a release too many never opens extra slots", () => {
  const s = new ExecSlots(1);
  s.release();
  expect(s.running).toBe(0);
  expect(s.take()).toBe(true);
  expect(s.take()).toBe(false);
});
