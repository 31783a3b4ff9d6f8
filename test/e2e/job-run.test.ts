/**
 * Job VMs end to end on the host (docs/jobs.md), in QEMU: runJobs deploys
 * the minimal template as an initramfs, boots several job VMs at once, and
 * each gets its own directory, agent port and exit record. Cases: success
 * (in its work_dir), failure, OOM, a guest that hangs past its deadline
 * (stopped through the agent, the job gets its stop signal), a guest that
 * crashes before reporting (kernel panic), and an invalid [job] at boot
 * (code 3, the VM powers off). A VM without an agent reports through its
 * console. The CI runner registration runs against a
 * registration server this test starts on the host (test/helpers/ci-server.ts,
 * a stand-in for GitHub's): register → job → result → removal, an expired
 * token (code 1) and a server that refuses (code 3). Cases run concurrently
 * to keep the number of slow TCG boot rounds at two.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JobRunOptions, runJobs } from "../../host/job.ts";
import type { ExitRecord } from "../../host/job-record.ts";
import { ensureKernel, ensureVmlinux, type Kernel } from "../../host/kernel.ts";
import { qemuArgs } from "../../host/qemu-args.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { type CiServer, startCiServer } from "../helpers/ci-server.ts";
import { buildImage, testVmToml } from "../vm/image.ts";

setDefaultTimeout(600_000);
let kernel: Kernel;
let dir: string;
let ci: CiServer;
const VALID = `reg-valid-${process.pid}-AAAAAAAAAAAAAAAA`;
const EXPIRED = `reg-expired-${process.pid}-BBBBBBBBBBBBBB`;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-jobrun-"));
  ci = startCiServer(
    { [VALID]: "valid", [EXPIRED]: "expired" },
    "echo CI-JOB-STEP hello from the CI job; exit 0",
  );
});
afterAll(async () => {
  await ci?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const job = (
  name: string,
  j: NonNullable<VmConfigInput["job"]>,
  extra: Partial<JobRunOptions> = {},
) =>
  ({
    name,
    out: join(dir, name),
    vm: { hostname: name, job: j },
    kernel,
    deadlineMs: 300_000,
    stepGraceMs: 30_000,
    progress: (m: string) => console.log(m),
    ...extra,
  }) satisfies JobRunOptions;

const ok = (r: ExitRecord | Error): ExitRecord => {
  if (r instanceof Error) throw r;
  return r;
};

/** After a run without --keep, only the record and the console log are left. */
function leftOver(name: string): string[] {
  return readdirSync(join(dir, name)).sort();
}

describe("hero-init job run", () => {
  test("success, failure, OOM, hang past the deadline and a crash, at once; an invalid [job] at boot ends with 3", async () => {
    // Booted by hand: this VM can power off before a harness's QMP check would answer.
    const invalidAtBoot = (async () => {
      const initrd = await buildImage(join(dir, "invalid.cpio"), {
        kernel,
        busybox: true,
        vmToml: testVmToml('\n[job]\ncommand = []\nwork_dir = "/"\n'),
      });
      const consoleFile = join(dir, "invalid-console.log");
      const qemu = Bun.spawn(
        qemuArgs({
          vmlinuz: await ensureVmlinux(kernel),
          initrd,
          serial: { file: consoleFile },
        }),
        { stdin: "ignore", stdout: "ignore", stderr: "inherit" },
      );
      const exited = await Promise.race([qemu.exited, Bun.sleep(300_000).then(() => "timeout")]);
      if (exited === "timeout") qemu.kill("SIGKILL");
      const text = readFileSync(consoleFile, "utf8").replaceAll("\r", "");
      return { line: /^HERO-EXIT .*$/m.exec(text)?.[0] ?? text.slice(-2000), exit: exited };
    })();
    const runs = runJobs(
      [
        job("ok", {
          command: ["sh", "-c", 'echo "JOB-OK working in $(pwd) ($HERO_JOB_WORK_DIR)"; exit 0'],
        }),
        // No agent at all: the code comes from the console.
        job(
          "fail",
          { command: ["sh", "-c", "echo JOB-FAILING; exit 5"] },
          {
            vm: {
              hostname: "fail",
              agent: { enabled: false },
              job: { command: ["sh", "-c", "echo JOB-FAILING; exit 5"] },
            },
          },
        ),
        job("oom", {
          command: ["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
        }),
        job(
          "hang",
          {
            command: [
              "sh",
              "-c",
              "trap 'echo JOB-GOT-TERM; exit 0' TERM; echo JOB-HANGING; while true; do sleep 1; done",
            ],
          },
          { deadlineMs: 150_000 },
        ),
        job("crash", { command: ["sh", "-c", "echo JOB-CRASHING; echo c > /proc/sysrq-trigger"] }),
      ],
      5,
    );
    const [rOk, rFail, rOom, rHang, rCrash] = (await runs).map(ok) as [
      ExitRecord,
      ExitRecord,
      ExitRecord,
      ExitRecord,
      ExitRecord,
    ];
    const invalid = await invalidAtBoot;

    expect(rOk).toMatchObject({ code: 0, message: "job succeeded", outcome: "reported" });
    expect(["agent", "console"]).toContain(rOk?.source);
    expect(rOk?.consoleTail).toContain("JOB-OK working in /tmp/runner-work (/tmp/runner-work)");
    // Timestamps on the job's own log lines (seed 004).
    expect(rOk?.consoleTail).toMatch(
      /hero-init job: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z starting the job/,
    );

    expect(rFail).toMatchObject({
      code: 4,
      message: "job exited 5",
      oom: false,
      signal: null,
      source: "console",
    });
    expect(rOom).toMatchObject({
      code: 4,
      message: "job killed by SIGKILL - OOM",
      oom: true,
      signal: "SIGKILL",
    });

    // The hang: stopped at the deadline through the agent first; the job got its stop signal.
    expect(rHang).toMatchObject({ code: 124, outcome: "deadline", source: "host" });
    expect(rHang?.stopSteps[0]).toBe("agent-shutdown");
    expect(rHang?.consoleTail).toContain("JOB-HANGING");
    expect(rHang?.consoleTail).toContain("JOB-GOT-TERM");

    // The crash: no code from the guest; the record says so and names the panic.
    expect(rCrash).toMatchObject({ code: 125, outcome: "no-report", source: "host" });
    expect(rCrash?.message).toMatch(/without reporting.*kernel panic: sysrq triggered crash/);

    // Each its own ports, QEMU and record; disk and secrets gone, record and console kept 0600.
    const all = [rOk, rFail, rOom, rHang, rCrash] as ExitRecord[];
    expect(new Set(all.map((r) => r.qemu.pid)).size).toBe(5);
    for (const r of all) {
      expect(leftOver(r.name)).toEqual(["console.log", "exit.json"]);
      const rec = join(dir, r.name, "exit.json");
      expect(statSync(rec).mode & 0o777).toBe(0o600);
      expect(JSON.parse(readFileSync(rec, "utf8"))).toEqual(r);
      expect(Date.parse(r.endedAt)).toBeGreaterThanOrEqual(Date.parse(r.startedAt));
    }

    expect(invalid.line).toMatch(
      /^HERO-EXIT code=3 message="vm.toml \[job\] job\.(command|work_dir): must/,
    );
    expect(invalid.exit).toBe(0);
  });

  test("CI runner registration: register, one job, removal; an expired token is 1, a refusing server 3", async () => {
    const reg = (name: string, path: string, token: string) =>
      job(
        name,
        {
          secret_file: "/etc/hero-init/job.secret",
          registration: {
            url: `http://10.0.2.2:${ci.port}${path}`,
            runner_name: `runner-${name}`,
            labels: ["self-hosted", "hero", "ephemeral"],
          },
          command: [
            "sh",
            "-c",
            [
              'info=$(cat "$HERO_JOB_SECRET_FILE")',
              `cred=$(echo "$info" | sed -n 's/.*"credential":"\\([^"]*\\)".*/\\1/p')`,
              `base=$(echo "$info" | sed -n 's/.*"url":"\\([^"]*\\)".*/\\1/p')`,
              'script=$(wget -q -O - --header "Authorization: Bearer $cred" "$base/jobs/next")',
              'echo "RUNNER $HERO_RUNNER_NAME got its job"',
              'sh -c "$script"; rc=$?',
              'wget -q -O - --header "Authorization: Bearer $cred" --post-data "exit=$rc" "$base/jobs/result" >/dev/null',
              "exit $rc",
            ].join("\n"),
          ],
        },
        { jobSecret: new TextEncoder().encode(`${token}\n`) },
      );
    const [rOk, rExpired, rRefused] = (
      await runJobs(
        [
          reg("ci-ok", "/ci", VALID),
          reg("ci-expired", "/ci", EXPIRED),
          reg("ci-closed", "/closed", VALID),
        ],
        3,
      )
    ).map(ok) as [ExitRecord, ExitRecord, ExitRecord];

    expect(rOk).toMatchObject({ code: 0, message: "job succeeded", outcome: "reported" });
    expect(rOk?.consoleTail).toContain("RUNNER runner-ci-ok got its job");
    expect(rOk?.consoleTail).toContain("CI-JOB-STEP hello from the CI job");
    expect(ci.events.filter((e) => e.runner === "runner-ci-ok")).toEqual([
      { step: "register", runner: "runner-ci-ok", labels: ["self-hosted", "hero", "ephemeral"] },
      { step: "job", runner: "runner-ci-ok" },
      { step: "result", runner: "runner-ci-ok", detail: "exit=0" },
      { step: "removed", runner: "runner-ci-ok" },
    ]);
    expect(ci.live.size).toBe(0);

    expect(rExpired.code).toBe(1);
    expect(rExpired.message).toMatch(/token expired or invalid \(HTTP 401/);
    expect(rRefused.code).toBe(3);
    expect(rRefused.message).toMatch(
      /registration refused \(HTTP 403: runner registration is disabled for this repository\)/,
    );
    expect(ci.events.filter((e) => e.step === "job" && e.runner !== "runner-ci-ok")).toEqual([]);

    // The tokens never reach a log, a record or a file left on the host.
    for (const r of [rOk, rExpired, rRefused]) {
      for (const f of leftOver(r.name)) {
        const text = readFileSync(join(dir, r.name, f), "utf8");
        expect(text).not.toContain(VALID);
        expect(text).not.toContain(EXPIRED);
      }
      expect(existsSync(join(dir, r.name, "rootfs.cpio"))).toBe(false);
    }
  });
});
