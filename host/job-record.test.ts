import { describe, expect, test } from "bun:test";
import { heroExitLine } from "../guest/supervisor/job.ts";
import {
  CONSOLE_TAIL_BYTES,
  consoleTail,
  exitDetail,
  JOB_RUN_EXIT,
  nextStopStep,
  parseHeroExit,
  silentEnd,
} from "./job-record.ts";

describe("HERO-EXIT on the console", () => {
  test("the guest's own line round-trips, quotes and backslashes included", () => {
    const msg = 'job exited 3: "quoted" and back\\slash';
    const text = `[   3.1] boot\r\n${heroExitLine(4, msg)}\r\n[   4.0] reboot: Power down\r\n`;
    expect(parseHeroExit(text)).toEqual({ code: 4, message: msg });
  });

  test("only a line that starts with the sentinel counts; the last one wins", () => {
    const text = [
      '[+] job: HERO-EXIT code=0 message="spoofed by the job\'s output"',
      heroExitLine(0, "first"),
      "noise",
      heroExitLine(4, "job exited 1"),
      "",
    ].join("\n");
    expect(parseHeroExit(text)).toEqual({ code: 4, message: "job exited 1" });
    expect(parseHeroExit('[+] job: HERO-EXIT code=0 message="x"\n')).toBeNull();
    expect(parseHeroExit("nothing here")).toBeNull();
  });

  test("a code above 255 or an unterminated message is not a report", () => {
    expect(parseHeroExit('HERO-EXIT code=999 message="x"\n')).toBeNull();
    expect(parseHeroExit('HERO-EXIT code=1 message="x\n')).toBeNull();
  });

  test("signal and OOM come from the guest's message", () => {
    expect(exitDetail("job killed by SIGKILL - OOM")).toEqual({ signal: "SIGKILL", oom: true });
    expect(exitDetail("killed by SIGTERM")).toEqual({ signal: "SIGTERM", oom: false });
    expect(exitDetail("job exited 3")).toEqual({ signal: null, oom: false });
  });
});

describe("the exit record's console tail", () => {
  test("bounded, cut at a line, control characters and secrets removed", () => {
    const secret = "tok-1234567890";
    const lines = `${"x".repeat(100)}\n`.repeat(400);
    const text = `${lines}\x1b[1mbold\x1b[0m \x07bell ${secret}\n`;
    const t = consoleTail(text, [secret]);
    expect(Buffer.byteLength(t)).toBeLessThanOrEqual(CONSOLE_TAIL_BYTES);
    expect(t.startsWith("x")).toBe(true);
    expect(t.endsWith("bold bell [redacted]\n")).toBe(true);
    expect(t).not.toContain(secret);
  });

  test("a short console is kept whole", () => {
    expect(consoleTail("a\r\nb\n")).toBe("a\nb\n");
  });
});

describe("no report", () => {
  test("the deadline is 124, a silent end 125 naming a kernel panic", () => {
    expect(silentEnd(true, 60_000, { code: 0, signal: null }, "").code).toBe(JOB_RUN_EXIT.deadline);
    const crash = silentEnd(
      false,
      60_000,
      { code: 0, signal: null },
      "Kernel panic - not syncing: sysrq triggered crash\n",
    );
    expect(crash).toEqual({
      code: JOB_RUN_EXIT.noReport,
      message:
        "the VM ended without reporting a job code (QEMU exited 0; kernel panic: sysrq triggered crash)",
    });
    expect(silentEnd(false, 1, { code: null, signal: "SIGKILL" }, "").message).toMatch(
      /QEMU killed by SIGKILL/,
    );
  });

  test("the stop sequence: agent shutdown, ACPI, quit, kill, then nothing", () => {
    const steps: string[] = [];
    for (let s = nextStopStep(null); s; s = nextStopStep(s)) steps.push(s);
    expect(steps).toEqual(["agent-shutdown", "acpi", "quit", "kill"]);
  });
});
