import { expect, test } from "bun:test";
import { createGcHint } from "./gc-hint.ts";

test("collects once per `every` bytes, counting across calls, and not before", () => {
  let n = 0;
  const hint = createGcHint(100, () => n++);
  hint(60);
  expect(n).toBe(0);
  hint(39);
  expect(n).toBe(0);
  hint(1);
  expect(n).toBe(1);
  hint(99);
  expect(n).toBe(1);
  hint(250); // one call, one collection: the count starts again
  expect(n).toBe(2);
  hint(99);
  expect(n).toBe(2);
});
