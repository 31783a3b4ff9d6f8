import { describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { failureMessage, runChecked, runCommand, showArgv, stderrTail } from "./command.ts";

const text = (b: Uint8Array) => new TextDecoder().decode(b);

describe("stderrTail, failureMessage, showArgv (pure)", () => {
  test("the last three non-empty lines, trimmed and joined", () => {
    expect(stderrTail("one\ntwo\n\n  three  \nfour\n\n")).toBe("two | three | four");
    expect(stderrTail("")).toBe("");
    expect(stderrTail("a\nb", 1)).toBe("b");
  });

  test("a long tail keeps its end", () => {
    const t = stderrTail(`${"x".repeat(5000)}END`, 3, 10);
    expect(t).toBe(`…${"x".repeat(7)}END`);
  });

  test("an exit status, a signal, and no stderr", () => {
    expect(failureMessage("mke2fs", { code: 1, signal: null, stderr: "a\nb\nc\nd\n" })).toBe(
      "mke2fs failed (1): b | c | d",
    );
    expect(failureMessage("xz -dc", { code: null, signal: "SIGKILL", stderr: "" })).toBe(
      "xz -dc failed (killed by SIGKILL)",
    );
  });

  test("argv shown with blank or empty arguments quoted", () => {
    expect(showArgv(["debugfs", "-R", "stat /a", ""])).toBe('debugfs -R "stat /a" ""');
  });
});

describe("runCommand", () => {
  test("argv reaches the tool as it is: no shell parses it", () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-command-"));
    try {
      const arg = `$(touch ${join(dir, "pwned")}); \`touch ${join(dir, "pwned")}\` * ' "`;
      const r = runCommand(["printf", "%s", arg]);
      expect(r.code).toBe(0);
      expect(text(r.stdout)).toBe(arg);
      expect(existsSync(join(dir, "pwned"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a failing tool: its status, stdout and stderr are returned, not thrown", () => {
    const r = runCommand(["sh", "-c", "echo out; echo err >&2; exit 3"]);
    expect(r).toMatchObject({ code: 3, signal: null, stderr: "err\n" });
    expect(text(r.stdout)).toBe("out\n");
  });

  test("env is added to this process's environment; cwd and stdin are used", () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), "hero-command-")));
    try {
      const r = runCommand(["sh", "-c", 'printf "%s|%s|" "$HERO_T" "$PWD"; cat'], {
        env: { HERO_T: "set" },
        cwd: dir,
        stdin: new TextEncoder().encode("in"),
      });
      // `sh` found through PATH shows the rest of the environment was kept.
      expect(text(r.stdout)).toBe(`set|${dir}|in`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("stdin is empty unless given", () => {
    expect(text(runCommand(["cat"]).stdout)).toBe("");
  });

  test("more output than the cap, on stdout or on stderr: the tool is stopped and it throws", () => {
    expect(() => runCommand(["head", "-c", "100000", "/dev/zero"], { maxOutput: 1000 })).toThrow(
      "head -c 100000 /dev/zero: printed more than 1000 bytes of output; stopped",
    );
    expect(() =>
      runCommand(["sh", "-c", "head -c 100000 /dev/zero >&2"], { maxOutput: 1000, what: "noisy" }),
    ).toThrow("noisy: printed more than 1000 bytes of output; stopped");
  });

  test("output under the cap is returned whole", () => {
    const r = runCommand(["head", "-c", "900", "/dev/zero"], { maxOutput: 1000 });
    expect(r.stdout.length).toBe(900);
  });

  test("a tool that does not exist: an error naming it", () => {
    expect(() => runCommand(["hero-no-such-tool-x", "a"], { what: "probing" })).toThrow(
      /^probing: cannot run hero-no-such-tool-x: /,
    );
  });

  test("a tool ended by a signal: no code, the signal", () => {
    const r = runCommand(["sh", "-c", "kill -KILL $$"]);
    expect(r.code).toBeNull();
    expect(r.signal).toBe("SIGKILL");
  });
});

describe("runChecked", () => {
  test("exit 0: the result", () => {
    expect(text(runChecked(["echo", "hi"]).stdout)).toBe("hi\n");
  });

  test("non-zero: throws naming the command and its stderr's tail", () => {
    const fail = ["sh", "-c", "for l in 1 2 3 4; do echo line$l >&2; done; exit 2"];
    expect(() => runChecked(fail)).toThrow(
      'sh -c "for l in 1 2 3 4; do echo line$l >&2; done; exit 2" failed (2): line2 | line3 | line4',
    );
    expect(() => runChecked(fail, { what: "debootstrap" })).toThrow(
      "debootstrap failed (2): line2 | line3 | line4",
    );
  });

  test("killed by a signal: throws saying so", () => {
    expect(() => runChecked(["sh", "-c", "kill -KILL $$"], { what: "x" })).toThrow(
      "x failed (killed by SIGKILL)",
    );
  });
});
