/**
 * vm-run.ts, pure parts: the Ctrl-C sequence (stopStep), the exit code and
 * the --powerdown-timeout parser. The sequence through a real PTY:
 * test/attack/vm-run-ctrlc.test.ts; with a real QEMU: test/e2e/vm-run.test.ts.
 */
import { describe, expect, test } from "bun:test";
import {
  parsePowerdownTimeout,
  type StopEvent,
  type StopPhase,
  stopStep,
  VM_RUN_EXIT,
  vmRunExitCode,
} from "./vm-run.ts";

describe("stopStep", () => {
  const table: [StopPhase, StopEvent, StopPhase, string | null][] = [
    ["running", "interrupt", "powering-down", "powerdown"],
    ["running", "timeout", "running", null],
    ["powering-down", "interrupt", "stopping", "force"],
    ["powering-down", "timeout", "stopping", "force"],
    ["stopping", "interrupt", "killed", "kill"],
    ["stopping", "timeout", "stopping", null],
    ["killed", "interrupt", "killed", null],
    ["killed", "timeout", "killed", null],
  ];
  for (const [phase, event, next, action] of table)
    test(`${phase} + ${event} → ${next}, ${action}`, () => {
      expect(stopStep(phase, event)).toEqual({ phase: next, action: action as never });
    });

  test("Ctrl-C, Ctrl-C, Ctrl-C: power button, stop, SIGKILL; nothing after", () => {
    let phase: StopPhase = "running";
    const actions: (string | null)[] = [];
    for (let i = 0; i < 4; i++) {
      const s = stopStep(phase, "interrupt");
      phase = s.phase;
      actions.push(s.action);
    }
    expect(actions).toEqual(["powerdown", "force", "kill", null]);
  });
});

describe("vmRunExitCode", () => {
  test("a VM that powered off is 0; a forced stop says why", () => {
    expect(vmRunExitCode(null, { code: 0, signal: null })).toBe(VM_RUN_EXIT.poweroff);
    expect(vmRunExitCode("interrupt", { code: 0, signal: null })).toBe(130);
    expect(vmRunExitCode("interrupt", { code: null, signal: "SIGKILL" })).toBe(130);
    expect(vmRunExitCode("timeout", { code: 0, signal: null })).toBe(124);
  });

  test("otherwise QEMU's own code, 128+N for a signal", () => {
    expect(vmRunExitCode(null, { code: 1, signal: null })).toBe(1);
    expect(vmRunExitCode(null, { code: null, signal: "SIGKILL" })).toBe(137);
    expect(vmRunExitCode(null, { code: null, signal: "SIGSEGV" })).toBe(139);
    expect(vmRunExitCode(null, { code: null, signal: "SIGNOPE" })).toBe(1);
    expect(vmRunExitCode(null, { code: null, signal: null })).toBe(1);
  });
});

describe("parsePowerdownTimeout", () => {
  test("seconds, fractions allowed", () => {
    expect(parsePowerdownTimeout("30")).toBe(30_000);
    expect(parsePowerdownTimeout("0.5")).toBe(500);
    expect(parsePowerdownTimeout("86400")).toBe(86_400_000);
  });

  test("refused with a message naming the option", () => {
    for (const bad of ["0", "-1", "", "soon", "1e3", "86401", "0.0"])
      expect(parsePowerdownTimeout(bad)).toStartWith("--powerdown-timeout: ");
  });
});
