import { describe, expect, test } from "bun:test";
import { parseVmConfig } from "../../lib/vm-config.ts";
import { shellSplit } from "../supervisor/shlex.ts";
import {
  expiryProblem,
  JOB_EXIT,
  JOB_EXPIRY_CAP_MS,
  runnerJobExit,
  shellJoin,
  urlForLog,
} from "./job-runner.ts";

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

  test("expiry cap: a token living more than an hour from now is refused, whatever the config says", () => {
    expect(JOB_EXPIRY_CAP_MS).toBe(3600_000);
    const j = job("expires = 2027-01-01T02:00:00Z");
    expect(expiryProblem(j, new Date("2027-01-01T01:00:00Z"))).toBeNull();
    expect(expiryProblem(j, new Date("2027-01-01T00:59:59Z"))).toMatch(
      /expires at 2027-01-01T02:00:00.000Z, more than 60 min after now .*nothing was run/,
    );
    // A smaller cap is honoured too.
    expect(expiryProblem(j, new Date("2027-01-01T01:00:00Z"), 600_000)).toMatch(/more than 10 min/);
  });

  test("seed 004's codes: 0 ok, 1 token, 2 download, 3 runner configuration, 4 job failed", () => {
    expect(JOB_EXIT).toEqual({ OK: 0, TOKEN: 1, DOWNLOAD: 2, RUNNER_CONFIG: 3, JOB_FAILED: 4 });
  });

  test("work_dir: defaults to /tmp/runner-work, must be absolute and at least two levels deep", () => {
    expect(job("").work_dir).toBe("/tmp/runner-work");
    expect(job('work_dir = "/srv/ci/work"').work_dir).toBe("/srv/ci/work");
    for (const bad of ["/", "/tmp", "relative/dir", "/tmp/../etc"]) {
      const { config, errors } = parseVmConfig(
        `[job]\ncommand = ["true"]\nwork_dir = "${bad}"\n`,
        "vm.toml",
      );
      expect(errors.length).toBeGreaterThan(0);
      expect(config.job).toBeUndefined();
      expect(config.jobError).toMatch(/work_dir/);
    }
  });

  test("an invalid [job] is kept as jobError (the VM ends with code 3), a valid one is not", () => {
    const bad = parseVmConfig('hostname = "ci-1"\n[job]\ncommand = []\n', "vm.toml");
    expect(bad.config.hostname).toBe("ci-1");
    expect(bad.config.job).toBeUndefined();
    expect(bad.config.jobError).toMatch(/^vm.toml \[job\] job.command: must not be empty/);
    const none = parseVmConfig('hostname = "ci-1"\n', "vm.toml");
    expect(none.config.jobError).toBeUndefined();
    // Another section's error does not make a job error.
    const other = parseVmConfig('[ui]\nport = "x"\n[job]\ncommand = ["true"]\n', "vm.toml");
    expect(other.config.jobError).toBeUndefined();
    expect(other.config.job?.command).toEqual(["true"]);
  });

  test("[job.registration] needs a secret_file and checks name, labels and URL", () => {
    const reg = (r: string, secret = 'secret_file = "/etc/hero-init/job.secret"\n') =>
      parseVmConfig(`[job]\ncommand = ["true"]\n${secret}[job.registration]\n${r}`, "vm.toml");
    const ok = reg(
      'url = "http://10.0.2.2:8080/ci"\nrunner_name = "r-1"\nlabels = ["self-hosted", "x64"]\n',
    );
    expect(ok.errors).toEqual([]);
    expect(ok.config.job?.registration).toEqual({
      url: "http://10.0.2.2:8080/ci",
      runner_name: "r-1",
      labels: ["self-hosted", "x64"],
    });
    expect(reg('url = "http://h/"\nrunner_name = "r"\n', "").config.jobError).toMatch(
      /needs secret_file/,
    );
    expect(reg('url = "http://h/?x=1"\nrunner_name = "r"\n').config.jobError).toMatch(/URL/);
    expect(reg('url = "http://h/"\nrunner_name = "a b"\n').config.jobError).toMatch(/runner_name/);
    expect(
      reg('url = "http://h/"\nrunner_name = "r"\nlabels = ["x\\ny"]\n').config.jobError,
    ).toMatch(/labels/);
  });

  test("a URL in a log line has no user info and no query", () => {
    expect(urlForLog("https://u:p@example.com/runner.tgz?sig=abc")).toBe(
      "https://example.com/runner.tgz",
    );
    expect(urlForLog("::")).toBe("(unparsable URL)");
  });

  test("exit mapping follows the documented codes", () => {
    expect(runnerJobExit({ code: 0, signal: null })).toEqual({
      code: JOB_EXIT.OK,
      message: "job succeeded",
    });
    expect(runnerJobExit({ code: 3, signal: null })).toEqual({ code: 4, message: "job exited 3" });
    expect(runnerJobExit({ code: 127, signal: null }).code).toBe(JOB_EXIT.RUNNER_CONFIG);
    expect(runnerJobExit({ code: 126, signal: null }).message).toMatch(/not executable/);
    expect(runnerJobExit({ code: null, signal: "SIGKILL" })).toEqual({
      code: 4,
      message: "job killed by SIGKILL",
    });
    expect(runnerJobExit({ code: null, signal: "SIGKILL" }, true)).toEqual({
      code: 4,
      message: "job killed by SIGKILL - OOM",
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
