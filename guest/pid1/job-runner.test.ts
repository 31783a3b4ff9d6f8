import { describe, expect, test } from "bun:test";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { shellSplit } from "../supervisor/shlex.ts";
import { expiryProblem, JOB_EXIT, runnerJobExit, shellJoin } from "./job-runner.ts";

const job = (extra: string) => {
  const { config, errors } = parseVmConfig(
    `[job]\n${extra}\n[job.runner]\nurl = "http://192.0.2.1/r"\nsha256 = "${"a".repeat(64)}"\nsize = 3\n`,
    "vm.toml",
  );
  expect(errors).toEqual([]);
  return config.job as NonNullable<typeof config.job>;
};

describe("job VMs (pure parts)", () => {
  test("expiry: refused at or after the instant, with the times in the message", () => {
    const j = job("expires = 2027-01-01T00:00:00Z");
    expect(expiryProblem(j, new Date("2026-12-31T23:59:59Z"))).toBeNull();
    expect(expiryProblem(j, new Date("2027-01-01T00:00:00Z"))).toMatch(
      /expired at 2027-01-01T00:00:00.000Z .*nothing was run/,
    );
    expect(expiryProblem(job(""), new Date(0))).toBeNull();
  });

  test("exit mapping follows the documented codes", () => {
    expect(runnerJobExit({ code: 0, signal: null })).toEqual({
      code: JOB_EXIT.OK,
      message: "job succeeded",
    });
    expect(runnerJobExit({ code: 3, signal: null })).toEqual({ code: 4, message: "job exited 3" });
    expect(runnerJobExit({ code: 127, signal: null }).code).toBe(JOB_EXIT.JOB_CONFIG);
    expect(runnerJobExit({ code: 126, signal: null }).message).toMatch(/not executable/);
    expect(runnerJobExit({ code: null, signal: "SIGKILL" })).toEqual({
      code: 4,
      message: "job killed by SIGKILL",
    });
  });

  test("shellJoin round-trips through the supervisor's shellSplit", () => {
    for (const argv of [
      ["/var/lib/hero-job/runner", "--once"],
      ["sh", "-c", "echo 'quoted' \"double\" $HOME; exit 3"],
      ["a b", "", "it's"],
    ])
      expect(shellSplit(shellJoin(argv))).toEqual(argv);
  });

  test("a [job] needs either a service or a runner/command, not both", () => {
    const { errors } = parseVmConfig('[job]\nservice = "x"\ncommand = ["y"]\n', "vm.toml");
    expect(String(errors[0])).toMatch(/either service, or runner\/command/);
  });
});
