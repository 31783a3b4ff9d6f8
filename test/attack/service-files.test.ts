/**
 * Attack tests: service files and the control socket's service_create and
 * service_get (issue 13, findings 5, 6 and the first parts of 14).
 *
 * The attacker writes service files (an image author, a careless operator,
 * whoever feeds the injector) or talks to the control socket (a local
 * process): an alias bomb, duplicate keys, `__proto__`, a symlink to a file
 * outside the directory, deep or oversized service_create content. The
 * supervisor is the real dist/hero-init in `init` mode inside a pid
 * namespace (as in test/integration/supervisor.test.ts); the injector is
 * called directly. PID 1's memory is read from /proc (VmHWM), not timed.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { inject } from "../../host/inject.ts";
import { isHeroError } from "../../lib/errors.ts";
import { until } from "../helpers/poll.ts";

setDefaultTimeout(120_000);
const ROOT = join(import.meta.dir, "../..");
const BIN = join(ROOT, "dist/hero-init");
const dir = mkdtempSync(join(tmpdir(), "hero-attack-svc-"));
const etc = join(dir, "zinit");
const outside = join(dir, "outside");
const sock = join(dir, "zinit.sock");
const marker = (n: string) => join(dir, `pwned-${n}`);
let daemon: ReturnType<typeof Bun.spawn> | undefined;
let daemonOut = "";

// A sleep duration unique to this run, so cleanup kills only our processes.
const SLEEP = String(200_000 + (process.pid % 700_000));

/** 60 KB aliased 10 × 10 × 10: 60 KB of text, 60 MB of strings once expanded. */
const BIG = "x".repeat(60_000);
const BOMB = `a: &a "${BIG}"\nb: &b [${Array(10).fill("*a")}]\nc: &c [${Array(10).fill("*b")}]\nd: [${Array(10).fill("*c")}]\nexec: /bin/true\noneshot: true\n`;
const DUP = `exec: /bin/true\noneshot: true\nexec: sh -c "echo dup > ${marker("dup")}"\n`;

const files: Record<string, string> = {
  ok: `exec: sleep ${SLEEP}\n`,
  dup: DUP,
  proto: `exec: sleep ${SLEEP}\nafter: [__proto__]\n`,
  bomb: BOMB,
};

/** One JSON-RPC exchange on a fresh connection; the raw reply line. */
function rpcRaw(method: string, params: unknown, timeoutMs = 90_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const c = createConnection(sock);
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    c.on("data", (d: Buffer) => {
      chunks.push(d);
      if (d.includes(10)) {
        clearTimeout(timer);
        c.destroy();
        resolve(Buffer.concat(chunks).toString());
      }
    });
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    c.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method, params })}\n`);
  });
}

const rpc = async (method: string, params: unknown) =>
  JSON.parse(await rpcRaw(method, params)) as {
    result?: unknown;
    error?: { code: number; message: string };
  };

const waitFor = <T>(fn: () => Promise<T | undefined>, ms = 20_000) =>
  until("the daemon", fn, ms, 100, () => `daemon output:\n${daemonOut}`);

/** The supervisor's pid on the host: the hero-init process serving our socket. */
function supervisorPid(): number {
  const exe = realpathSync(BIN);
  for (const p of readdirSync("/proc")) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readlinkSync(`/proc/${p}/exe`) !== exe) continue;
      if (readFileSync(`/proc/${p}/cmdline`, "utf8").split("\0").includes(sock)) return Number(p);
    } catch {}
  }
  throw new Error("supervisor process not found");
}

/** Peak resident memory (VmHWM) of a process, in bytes. */
function peakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  if (!m) throw new Error(`no VmHWM for ${pid}`);
  return Number(m[1]) * 1024;
}

const list = async () => (await rpc("service_list", [])).result as Record<string, string>;

beforeAll(async () => {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run bash scripts/build.sh first`);
  mkdirSync(etc);
  mkdirSync(outside);
  for (const [n, y] of Object.entries(files)) writeFileSync(join(etc, `${n}.yaml`), y);
  // A symlink to a file outside the directory: "only regular files are read".
  writeFileSync(
    join(outside, "evil.yaml"),
    `exec: sh -c "echo pwned > ${marker("symlink")}"\noneshot: true\n`,
  );
  symlinkSync(join(outside, "evil.yaml"), join(etc, "evil.yaml"));
  const helperDir = join(dir, "bin");
  mkdirSync(helperDir);
  symlinkSync(join(ROOT, "dist/preinit"), join(helperDir, "hero-exec"));
  const args = [BIN, "init", "-c", etc, "-s", sock];
  const d = Bun.spawn(
    // --kill-child: when unshare dies, the namespace's init dies, and with it everything inside.
    [
      "unshare",
      "--pid",
      "--fork",
      "--kill-child",
      "--mount-proc",
      "--",
      "sh",
      "-c",
      `"$@"; true`,
      "sh",
      ...args,
    ],
    {
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, HERO_EXEC_HELPER: join(helperDir, "hero-exec") },
    },
  );
  daemon = d;
  (async () => {
    for await (const c of d.stderr) daemonOut += new TextDecoder().decode(c);
  })();
  await waitFor(async () => (existsSync(sock) ? true : undefined));
  // Settled: the long-running service is up and every file has a state.
  await waitFor(async () => {
    const l = await list();
    return l.ok === "Running" && ["evil", "dup", "proto", "bomb"].every((n) => n in l)
      ? true
      : undefined;
  });
  await Bun.sleep(500); // oneshots that were (wrongly) started have had time to write their marker
});

afterAll(() => {
  daemon?.kill("SIGKILL");
  for (const p of Bun.spawnSync(["pgrep", "-f", `^sleep ${SLEEP}$`])
    .stdout.toString()
    .split("\n")
    .filter(Boolean))
    process.kill(Number(p), "SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("service directory (finding 14)", () => {
  test("a symlink to a file outside the directory is refused, reported and never started", async () => {
    expect((await list()).evil).toMatch(
      /^Error\(config: .*\/evil\.yaml: is a symlink; only regular files are read\)$/,
    );
    expect(existsSync(marker("symlink"))).toBe(false);
    expect(daemonOut).toContain("evil.yaml: is a symlink");
  });

  test("duplicate keys are refused with file and line; the last value never runs", async () => {
    expect((await list()).dup).toMatch(
      /^Error\(config: .*\/dup\.yaml:3: exec: duplicate key "exec" \(first at line 1\)/,
    );
    expect(existsSync(marker("dup"))).toBe(false);
  });

  test("after: [__proto__] is refused with a clear message, not silently dropped", async () => {
    expect((await list()).proto).toMatch(
      /^Error\(config: .*\/proto\.yaml:2: after\.0: "__proto__" is a reserved name/,
    );
  });
});

describe("alias bomb (finding 6)", () => {
  test("the loader refuses it", async () => {
    expect((await list()).bomb).toMatch(
      /^Error\(config: .*\/bomb\.yaml:2: .*too large once expanded/,
    );
  });

  test("service_get answers an error and PID 1's peak memory does not grow", async () => {
    const pid = supervisorPid();
    const before = peakRss(pid);
    const reply = await rpcRaw("service_get", ["bomb"], 60_000).catch((e: Error) => e.message);
    const after = peakRss(pid);
    console.log(
      `supervisor VmHWM: ${(before / 2 ** 20).toFixed(0)} MB before service_get(bomb), ${(after / 2 ** 20).toFixed(0)} MB after; reply: ${reply.length} bytes`,
    );
    // The expanded bomb is 60 MB of strings (1.3 GB RSS on the old code): allow far less.
    expect(after - before).toBeLessThan(32 * 2 ** 20);
    expect(reply.length).toBeLessThan(4096);
    const r = JSON.parse(reply);
    // zinit's ConfigError and text; hero-init's reason in data.cause_chain.
    expect(r.error?.code).toBe(-32005);
    expect(r.error?.message).toBe("getting service: failed to parse YAML");
    expect(r.error?.data?.cause_chain?.[0]).toMatch(/bomb\.yaml:2: .*too large once expanded/);
    expect((await list()).ok).toBe("Running"); // and it still answers
  });
});

describe("service_create (finding 5)", () => {
  const leftovers = () => readdirSync(etc).filter((f) => f.includes(".tmp"));

  test("deep unknown keys are refused and nothing is written", async () => {
    let junk: Record<string, unknown> = {};
    const root = junk;
    for (let i = 0; i < 5000; i++) {
      const next: Record<string, unknown> = {};
      junk.k = next;
      junk = next;
    }
    const pid = supervisorPid();
    const before = peakRss(pid);
    const r = await rpc("service_create", ["deep", { exec: "/bin/true", junk: root }]);
    // Content that is no service file: zinit's ConfigError (-32005).
    expect(r.error?.code).toBe(-32005);
    expect(r.error?.message).toMatch(/deep\.yaml: junk(\.k)+: nested more than 16 levels/);
    expect(existsSync(join(etc, "deep.yaml"))).toBe(false);
    expect(leftovers()).toEqual([]);
    expect(peakRss(pid) - before).toBeLessThan(32 * 2 ** 20);
  });

  test("a 900 KB spec is refused: the loader's 256 KiB limit holds here too", async () => {
    const env = Object.fromEntries(Array.from({ length: 15 }, (_, i) => [`V${i}`, BIG]));
    const r = await rpc("service_create", ["huge", { exec: "/bin/true", env }]);
    expect(r.error?.code).toBe(-32005);
    expect(r.error?.message).toMatch(/larger than a service file may be \(262144 bytes\)/);
    expect(existsSync(join(etc, "huge.yaml"))).toBe(false);
    expect(leftovers()).toEqual([]);
  });

  test("unknown fields and reserved names are refused, nothing written", async () => {
    for (const [name, content, re] of [
      ["typo", { exec: "/bin/true", oneshoot: true }, /oneshoot: unknown field/],
      ["proto1", { exec: "/bin/true", after: ["__proto__"] }, /"__proto__" is a reserved name/],
      ["proto2", JSON.parse('{"exec":"/bin/true","env":{"__proto__":"x"}}'), /not allowed/],
    ] as const) {
      const r = await rpc("service_create", [name, content]);
      expect(r.error?.code).toBe(-32005);
      expect(r.error?.message).toMatch(re);
      expect(existsSync(join(etc, `${name}.yaml`))).toBe(false);
    }
    expect(leftovers()).toEqual([]);
  });

  test("a valid create writes what the loader reads, and only once", async () => {
    const content = { exec: `sleep ${SLEEP}`, env: { A: "1" } };
    expect((await rpc("service_create", ["made", content])).result).toMatch(/created/);
    expect(Bun.YAML.parse(readFileSync(join(etc, "made.yaml"), "utf8"))).toEqual(content);
    expect((await rpc("service_get", ["made"])).result).toEqual(content);
    expect((await rpc("service_create", ["made", content])).error?.code).toBe(-32007);
    expect(leftovers()).toEqual([]);
  });
});

describe("the injector checks service files as the guest will (findings 6, 14)", () => {
  async function refusedBy(services: string | Record<string, string>): Promise<string> {
    const target = mkdtempSync(join(dir, "rootfs-"));
    let err: unknown = null;
    try {
      await inject({
        format: "dir",
        target,
        heroInit: BIN,
        services,
        dryRun: true,
        cacheDir: join(dir, "cache"),
      });
    } catch (e) {
      err = e;
    }
    expect(readdirSync(target)).toEqual([]);
    expect(isHeroError(err, "input")).toBe(true);
    return String(err);
  }

  test("the alias bomb", async () => {
    expect(await refusedBy({ bomb: BOMB })).toMatch(/bomb\.yaml:2: .*too large once expanded/);
  });

  test("duplicate keys", async () => {
    expect(await refusedBy({ dup: DUP })).toMatch(/dup\.yaml:3: exec: duplicate key "exec"/);
  });

  test("a symlink in a services directory", async () => {
    const svc = join(dir, "inject-services");
    mkdirSync(svc);
    symlinkSync(join(outside, "evil.yaml"), join(svc, "evil.yaml"));
    expect(await refusedBy(svc)).toMatch(/evil\.yaml: is a symlink/);
  });
});
