/**
 * Attack test of `hero-init vm run`'s Ctrl-C (issue 13, finding 15). The
 * attacker is the careless operator: a Ctrl-C in the terminal, which
 * `vm run` (and `npm run demo`) promise powers the VM off. The kernel's
 * line discipline sends SIGINT to the terminal's whole foreground process
 * group; QEMU was in it, so it was killed ("terminating on signal 2")
 * instead of the guest shutting down, and a disk VM lost data. The
 * defence: QEMU runs in a session of its own; the first Ctrl-C presses the
 * ACPI power button over QMP with a timeout, a second one stops QEMU (QMP
 * quit, then SIGKILL), and the exit code says which.
 *
 * The real dist/hero-init runs in a real PTY (Bun.spawn `terminal`), and
 * the test types "\x03" into it exactly as a user would. QEMU is a stand-in
 * (qemu-standin.ts, found first in PATH as qemu-system-x86_64) that speaks
 * QMP and dies of SIGINT as QEMU does, and writes down what reached it. The
 * same Ctrl-C with a real QEMU and guest: test/e2e/vm-run.test.ts.
 */

import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(60_000);
const ROOT = join(import.meta.dir, "../..");
const HERO = join(ROOT, "dist/hero-init");
const BUN = join(ROOT, "node_modules/.bin/bun");
const dir = mkdtempSync(join(tmpdir(), "hero-attack-vmrun-"));
const bin = join(dir, "bin");
const deployment = join(dir, "vm");
let n = 0;
const started: number[] = [];

beforeAll(() => {
  if (!existsSync(HERO)) throw new Error(`${HERO} is missing: run scripts/build.sh`);
  mkdirSync(bin);
  writeFileSync(
    join(bin, "qemu-system-x86_64"),
    `#!/bin/sh\nexec ${BUN} ${join(import.meta.dir, "qemu-standin.ts")} "$@"\n`,
    { mode: 0o755 },
  );
  mkdirSync(deployment);
  writeFileSync(
    join(deployment, "deployment.json"),
    JSON.stringify({
      format: "initramfs",
      image: join(deployment, "rootfs.cpio"),
      initrd: join(deployment, "rootfs.cpio"),
      disk: null,
      kernel: { vmlinuz: join(deployment, "vmlinuz"), version: "standin" },
      kernelCmdline: "",
    }),
  );
});

afterEach(() => {
  // A stand-in left behind by a failed test must not outlive it.
  for (const pid of started.splice(0))
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
});

interface Run {
  proc: Bun.Subprocess;
  /** What the terminal showed. */
  screen(): string;
  /** What reached the stand-in QEMU. */
  journal(): string[];
  ctrlC(): void;
  /** Resolves with the exit code; throws if `vm run` is still running after `ms`. */
  exit(ms?: number): Promise<number>;
}

const waitFor = (what: string, fn: () => boolean, ms = 30_000) => until(what, fn, ms, 50);

/** Starts `hero-init vm run` in a fresh PTY and waits until the stand-in QEMU runs. */
async function vmRun(args: string[] = [], env: Record<string, string> = {}): Promise<Run> {
  const log = join(dir, `standin-${++n}.log`);
  writeFileSync(log, "");
  let screen = "";
  const decoder = new TextDecoder();
  const proc = Bun.spawn([HERO, "vm", "run", deployment, "--port", "1", ...args], {
    env: { ...process.env, ...env, PATH: `${bin}:${process.env.PATH}`, STANDIN_LOG: log },
    terminal: {
      cols: 200,
      rows: 50,
      data: (_t, d) => {
        screen += decoder.decode(d);
      },
    },
  });
  const journal = () => readFileSync(log, "utf8").split("\n").filter(Boolean);
  const run: Run = {
    proc,
    screen: () => screen.replaceAll("\r", ""),
    journal,
    ctrlC: () => proc.terminal?.write("\x03"),
    exit: async (ms = 30_000) => {
      const r = await Promise.race([proc.exited, Bun.sleep(ms).then(() => "running" as const)]);
      if (r === "running") {
        proc.kill("SIGKILL");
        throw new Error(`vm run still running ${ms} ms later; screen:\n${run.screen()}`);
      }
      return r;
    },
  };
  await waitFor("the stand-in QEMU", () => journal().some((l) => l.startsWith("start ")));
  started.push(Number(/^start (\d+)/.exec(journal()[0] as string)?.[1]));
  await waitFor("the stand-in's console", () => screen.includes("READY"));
  return run;
}

describe("vm run: Ctrl-C in the terminal", () => {
  test("powers the VM off: QEMU never sees the SIGINT, gets the power button, ends on its own (exit 0)", async () => {
    const r = await vmRun();
    r.ctrlC();
    const code = await r.exit();
    expect(r.journal()).not.toContain("signal SIGINT");
    expect(r.journal()).toContain("qmp system_powerdown");
    expect(r.journal().at(-1)).toBe("exit poweroff");
    expect(code).toBe(0);
    expect(r.screen()).toContain("pressing the power button");
    expect(r.screen()).not.toContain("terminating on signal");
    // QEMU is in a session of its own, not the terminal's (vm run leads that one).
    const sid = Number(/sid=(\d+)/.exec(r.journal()[0] as string)?.[1]);
    expect(sid).not.toBe(r.proc.pid);
  });

  test("a second Ctrl-C stops QEMU at once through QMP quit (exit 130)", async () => {
    const r = await vmRun(["--powerdown-timeout", "600"], { STANDIN_NO_ACPI: "1" });
    r.ctrlC();
    await waitFor("the power button", () => r.journal().includes("qmp system_powerdown"));
    r.ctrlC();
    const code = await r.exit();
    expect(r.journal()).toContain("qmp quit");
    expect(r.journal().at(-1)).toBe("exit quit");
    expect(r.journal().filter((l) => l.startsWith("signal"))).toEqual([]);
    expect(code).toBe(130);
    expect(r.screen()).toContain("second Ctrl-C: stopping QEMU now");
  });

  test("a guest that ignores the button is stopped after --powerdown-timeout (exit 124)", async () => {
    const r = await vmRun(["--powerdown-timeout", "1"], { STANDIN_NO_ACPI: "1" });
    r.ctrlC();
    const code = await r.exit();
    expect(r.journal()).toContain("qmp system_powerdown");
    expect(r.journal().at(-1)).toBe("exit quit");
    expect(code).toBe(124);
    expect(r.screen()).toContain("did not power off within 1 s");
  });

  test("a QEMU that ignores quit as well is SIGKILLed a few seconds later (exit 130)", async () => {
    const r = await vmRun(["--powerdown-timeout", "600"], {
      STANDIN_NO_ACPI: "1",
      STANDIN_NO_QUIT: "1",
    });
    r.ctrlC();
    await waitFor("the power button", () => r.journal().includes("qmp system_powerdown"));
    r.ctrlC();
    const code = await r.exit();
    expect(r.journal()).toContain("qmp quit");
    expect(r.journal().some((l) => l.startsWith("exit"))).toBe(false);
    expect(code).toBe(130);
    expect(r.screen()).toContain("SIGKILL");
  });

  test("SIGTERM to vm run powers the VM off too", async () => {
    const r = await vmRun();
    r.proc.kill("SIGTERM");
    const code = await r.exit();
    expect(r.journal()).toContain("qmp system_powerdown");
    expect(r.journal().at(-1)).toBe("exit poweroff");
    expect(code).toBe(0);
  });

  test("a bad --powerdown-timeout is refused before QEMU starts (exit 2)", async () => {
    for (const bad of ["0", "-3", "soon", "100000"]) {
      const p = Bun.spawnSync([HERO, "vm", "run", deployment, "--powerdown-timeout", bad], {
        env: {
          ...process.env,
          PATH: `${bin}:${process.env.PATH}`,
          STANDIN_LOG: join(dir, "never.log"),
        },
        timeout: 20_000,
      });
      const never = join(dir, "never.log");
      const pid = existsSync(never) && /^start (\d+)/.exec(readFileSync(never, "utf8"))?.[1];
      if (pid) started.push(Number(pid));
      expect({ bad, code: p.exitCode }).toEqual({ bad, code: 2 });
      expect(p.stderr.toString()).toContain("--powerdown-timeout");
      expect(existsSync(join(dir, "never.log"))).toBe(false);
    }
  });
});
