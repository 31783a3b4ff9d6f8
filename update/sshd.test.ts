import { describe, expect, test } from "bun:test";
import { sshdSteps } from "./sshd.ts";

describe("sshdSteps", () => {
  test("a running sshd with a changed drop-in is reloaded, never restarted (open sessions stay)", () => {
    expect(sshdSteps(true, true, true)).toEqual(["reload"]);
    expect(sshdSteps(true, false, true)).toEqual([]);
  });

  test("a stopped sshd is started: the start reads the new drop-in, no reload after it", () => {
    expect(sshdSteps(true, true, false)).toEqual(["start"]);
    expect(sshdSteps(true, false, false)).toEqual(["start"]);
  });

  test("sshd not wanted: stopped when it runs or may run, left alone when it is known stopped", () => {
    expect(sshdSteps(false, true, true)).toEqual(["stop"]);
    expect(sshdSteps(false, false, undefined)).toEqual(["stop"]);
    expect(sshdSteps(false, true, false)).toEqual([]);
  });

  test("state unknown: start (harmless when running), then reload only if the drop-in changed", () => {
    expect(sshdSteps(true, true)).toEqual(["start", "reload"]);
    expect(sshdSteps(true, false)).toEqual(["start"]);
  });
});
