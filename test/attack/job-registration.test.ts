/**
 * Boundary: a job VM's CI registration server and its console, both
 * hostile. The registration server may flood PID 1 with an endless answer,
 * echo the registration token back so it lands in HERO-EXIT and the host's
 * record, hand out a "credential" that would break the runtime file, or
 * redirect the token elsewhere; vm.toml may name a device or a huge file
 * as the secret, or give a registration URL made of escapes; the guest's
 * console may carry a forged HERO-EXIT inside a job's output or flood the
 * host. Each defence here is what the test checks (guest/pid1/job-register.ts,
 * job-runner.ts, lib/vm-config.ts, host/job-record.ts).
 */
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { registerRunner } from "../../guest/pid1/job-register.ts";
import { JOB_EXIT, prepareJob } from "../../guest/pid1/job-runner.ts";
import { consoleTail, parseHeroExit } from "../../host/job-record.ts";
import { parseVmConfig } from "../../lib/vm-config.ts";

const TOKEN = "registration-token-0123456789abcdef";
const servers: ReturnType<typeof Bun.serve>[] = [];
afterAll(() => {
  for (const s of servers) s.stop(true);
});

function serve(fetch: (req: Request) => Response | Promise<Response>): string {
  const s = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch });
  servers.push(s);
  return `http://127.0.0.1:${s.port}/ci`;
}

const reg = (url: string) => ({ url, runner_name: "r-1", labels: ["x"] });

describe("a hostile registration server", () => {
  test("an endless answer is cut at 64 KiB: the registration fails, PID 1 does not buffer it", async () => {
    let sent = 0;
    const url = serve(
      () =>
        new Response(
          new ReadableStream({
            pull(c) {
              sent += 65536;
              if (sent > 512 * 1024 * 1024) c.close();
              else c.enqueue(new Uint8Array(65536).fill(0x61));
            },
          }),
          { status: 201 },
        ),
    );
    const r = await registerRunner(reg(url), TOKEN);
    expect(r).toMatchObject({ code: 3 });
    expect((r as { message: string }).message).toMatch(/larger than 65536 bytes/);
    expect(sent).toBeLessThan(8 * 1024 * 1024);
  });

  test("a server that echoes the token does not get it into the outcome", async () => {
    const url = serve(async (req) =>
      Response.json(
        { message: `bad token ${req.headers.get("authorization")}\n\x1b[31mred` },
        { status: 401 },
      ),
    );
    const r = await registerRunner(reg(url), TOKEN);
    expect(r).toMatchObject({ code: 1 });
    const msg = (r as { message: string }).message;
    expect(msg).not.toContain(TOKEN);
    expect(msg).toContain("[redacted]");
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must be gone
    expect(msg).not.toMatch(/[\x00-\x1f]/);
  });

  test("a credential that is not a plain token (quotes, newlines) or the token itself is refused", async () => {
    for (const credential of ['abc"def\n{"x":1}0123456789', TOKEN, "short"]) {
      const url = serve(() => Response.json({ id: 7, credential }, { status: 201 }));
      expect(await registerRunner(reg(url), TOKEN)).toMatchObject({ code: 3 });
    }
    const badId = serve(() =>
      Response.json({ id: "../../etc", credential: "c".repeat(32) }, { status: 201 }),
    );
    expect(await registerRunner(reg(badId), TOKEN)).toMatchObject({ code: 3 });
  });

  test("a redirect is not followed: the token goes to the configured URL only", async () => {
    let leaked = "";
    const elsewhere = serve((req) => {
      leaked = req.headers.get("authorization") ?? "";
      return Response.json({ id: 1, credential: "c".repeat(32) }, { status: 201 });
    });
    const url = serve(() => Response.redirect(`${elsewhere}/runners/register`, 307));
    expect(await registerRunner(reg(url), TOKEN)).toMatchObject({ code: 3 });
    expect(leaked).toBe("");
  });
});

describe("a hostile [job.registration] in vm.toml", () => {
  const jobError = (registration: string) =>
    parseVmConfig(
      `[job]\ncommand = ["true"]\nsecret_file = "/etc/hero-init/job.secret"\n[job.registration]\n${registration}`,
      "vm.toml",
    ).config.jobError;

  test("a URL carrying an escape sequence or a megabyte of path never reaches a log line: the job is refused", () => {
    expect(jobError('url = "http://ci/\\u001b[2J\\u001b[31mok"\nrunner_name = "r"\n')).toMatch(
      /registration.url/,
    );
    expect(jobError('url = "http://ci\\u0000evil/x"\nrunner_name = "r"\n')).toMatch(
      /registration.url/,
    );
    expect(jobError(`url = "http://ci/${"a".repeat(1 << 20)}"\nrunner_name = "r"\n`)).toMatch(
      /at most 2048/,
    );
    expect(jobError(`url = "http://ci/${"a".repeat(2000)}"\nrunner_name = "r"\n`)).toBeUndefined();
  });

  test("labels and the runner name are bounded: no more than 32 labels, no line break, no path", () => {
    const labels = (n: number) => JSON.stringify(Array.from({ length: n }, (_, i) => `l${i}`));
    expect(
      jobError(`url = "http://ci/"\nrunner_name = "r"\nlabels = ${labels(32)}\n`),
    ).toBeUndefined();
    expect(jobError(`url = "http://ci/"\nrunner_name = "r"\nlabels = ${labels(33)}\n`)).toMatch(
      /at most 32 labels/,
    );
    expect(
      jobError(`url = "http://ci/"\nrunner_name = "r"\nlabels = ["${"x".repeat(65)}"]\n`),
    ).toMatch(/labels/);
    expect(jobError('url = "http://ci/"\nrunner_name = "../../etc/x"\n')).toMatch(/runner_name/);
    expect(jobError(`url = "http://ci/"\nrunner_name = "${"r".repeat(65)}"\n`)).toMatch(
      /runner_name/,
    );
  });
});

describe("a hostile [job] secret_file in vm.toml", () => {
  test("a device or a file larger than a token is refused (code 3), not read into PID 1 nor deleted", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hero-job-secret-"));
    try {
      const big = join(dir, "big.secret");
      writeFileSync(big, "");
      truncateSync(big, 1024 * 1024);
      for (const file of [big, "/dev/zero"]) {
        const { config, errors } = parseVmConfig(
          `[job]\ncommand = ["true"]\nsecret_file = "${file}"\nwork_dir = "${dir}/work"\n`,
          "vm.toml",
        );
        expect(errors).toEqual([]);
        const r = await prepareJob(config.job as NonNullable<typeof config.job>, new Date());
        expect(r).toMatchObject({ code: JOB_EXIT.RUNNER_CONFIG });
        expect((r as { message: string }).message).toContain(
          `job secret ${file}: not a regular file`,
        );
        expect(existsSync(file)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("a hostile console", () => {
  test("a HERO-EXIT inside the job's output is not a report; a flood leaves a bounded tail", () => {
    const forged = '[+] job: HERO-EXIT code=0 message="all good"\n'.repeat(1000);
    expect(parseHeroExit(forged)).toBeNull();
    const flood = `${"y".repeat(1 << 20)}\n`.repeat(8);
    expect(Buffer.byteLength(consoleTail(flood))).toBeLessThanOrEqual(16 * 1024);
  });
});
