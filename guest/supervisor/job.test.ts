import { describe, expect, test } from "bun:test";
import { heroExitLine, jobExit, kmsgShowsOom, oomKills } from "./job.ts";

describe("job exit", () => {
  test("codes follow the shell", () => {
    expect(jobExit({ code: 0, signal: null }, false)).toEqual({ code: 0, message: "success" });
    expect(jobExit({ code: 3, signal: null }, false)).toEqual({
      code: 3,
      message: "exit status 3",
    });
    expect(jobExit({ code: null, signal: "SIGKILL" }, false)).toEqual({
      code: 137,
      message: "killed by SIGKILL",
    });
    expect(jobExit({ code: null, signal: "SIGTERM" }, false)).toEqual({
      code: 143,
      message: "killed by SIGTERM",
    });
    expect(jobExit({ code: null, signal: "SIGKILL" }, true)).toEqual({
      code: 137,
      message: "killed by SIGKILL - OOM",
    });
    expect(
      jobExit({ code: 127, signal: null }, false, ["hero-exec: cannot exec /x: No such file"])
        .message,
    ).toBe("command not found: hero-exec: cannot exec /x: No such file");
    expect(jobExit({ code: 126, signal: null }, false).message).toBe("command not executable");
  });

  test("the sentinel line escapes quotes and newlines", () => {
    expect(heroExitLine(1, 'bad "x"\nnext')).toBe('HERO-EXIT code=1 message="bad \\"x\\" next"');
  });

  test("OOM evidence from memory.events and from the kernel log", () => {
    expect(oomKills("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")).toBe(1);
    expect(oomKills("oom 0\noom_kill 0\n")).toBe(0);
    expect(
      kmsgShowsOom("6,1,2,-;Out of memory: Killed process 321 (eater) total-vm:1kB", 321),
    ).toBe(true);
    expect(kmsgShowsOom("6,1,2,-;Out of memory: Killed process 3210 (eater)", 321)).toBe(false);
  });
});
