/**
 * zinit drop-in, the CLI side: (a) the real zinit 0.2.14 CLI against
 * hero-init's socket, every command, compared with the same CLI against a
 * real zinit 0.2.14 daemon running the same service files (outputs, stderr,
 * exit codes; pids normalised); (b) hero-init's CLI (dist/hero-init as
 * `zinit`) against the real zinit daemon, compared with zinit's own CLI.
 * Both daemons run as PID 1 of a pid namespace, started as
 * `zinit -s SOCK init -c DIR --container` (test/helpers/zinit-pair.ts).
 * Where hero-init differs on purpose (docs/services.md) the test says so.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createConnection } from "node:net";
import {
  type CliResult,
  cliOf,
  type Daemon,
  normalise,
  removeCliDir,
  sortedLines,
  spawnCli,
  startDaemon,
  waitFor,
} from "../helpers/zinit-pair.ts";

setDefaultTimeout(90_000);
afterAll(removeCliDir);

const SERVICES = {
  web: `exec: sh -c "echo hi; echo err >&2; exec sleep 1000"\n`,
  once: `exec: sh -c "echo once"\noneshot: true\n`,
  dep: "exec: sleep 1001\nafter: [web]\n",
  slow: "exec: sleep 1002\noneshot: true\n",
};
const SETTLED = ["dep: Running", "once: Success", "slow: Running", "web: Running"];

const zinitCli = cliOf("zinit");
const heroCli = cliOf("hero");
const norm = (r: CliResult) => ({ ...r, out: normalise(r.out), err: normalise(r.err) });

/** Waits until `list` (by zinit's CLI) shows exactly these lines. */
const settle = (d: Daemon, lines = SETTLED) =>
  waitFor(
    async () => {
      const got = sortedLines((await zinitCli(d.sock, "list")).out).slice(1);
      return JSON.stringify(got) === JSON.stringify(lines) || undefined;
    },
    `${d.kind}: ${lines.join(", ")}`,
  );

/** Waits until a service's status shows `text` (by zinit's CLI). */
const statusShows = (d: Daemon, name: string, text: string) =>
  waitFor(
    async () => (await zinitCli(d.sock, "status", name)).out.includes(text) || undefined,
    `${d.kind}: ${name} ${text}`,
  );

/**
 * The distinct log lines of a snapshot, sorted, zinit's start markers
 * included. Distinct: how many runs' lines a ring holds at a given moment is
 * timing (zinit itself may show a run's stdout line before its stderr one).
 */
const logLines = (out: string) => [...new Set(sortedLines(out))];

/** One legacy request, raw: the reply (until the daemon closes), parsed. */
function legacy(sock: string, line: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    let got = "";
    const c = createConnection(sock);
    const timer = setTimeout(() => {
      c.destroy();
      resolve({ timeout: got });
    }, 5000);
    c.on("data", (d) => {
      got += d.toString();
    });
    c.on("close", () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(got));
      } catch {
        reject(new Error(`not JSON: ${JSON.stringify(got)}`));
      }
    });
    c.write(line);
  });
}

describe("(a) the real zinit 0.2.14 CLI: hero-init answers as zinit does", () => {
  let zinit: Daemon;
  let hero: Daemon;
  /** The same command by zinit's CLI on both daemons: [on zinit, on hero-init]. */
  const both = async (...args: string[]) =>
    (await Promise.all([zinitCli(zinit.sock, ...args), zinitCli(hero.sock, ...args)])).map(norm);
  const same = async (...args: string[]) => {
    const [z, h] = await both(...args);
    expect({ args, ...h }).toEqual({ args, ...(z as CliResult) });
    return z as CliResult;
  };

  beforeAll(async () => {
    [zinit, hero] = await Promise.all([
      startDaemon("zinit", SERVICES),
      startDaemon("hero", SERVICES),
    ]);
    await Promise.all([settle(zinit), settle(hero)]);
  });
  afterAll(async () => {
    await Promise.all([zinit?.stop(), hero?.stop()]);
  });

  test("list: the same services and states (zinit prints a hash map's order, hero-init sorts)", async () => {
    const [z, h] = await both("list");
    expect(h?.code).toBe(0);
    expect(h?.out.startsWith("---\n")).toBe(true);
    expect(sortedLines(h?.out ?? "")).toEqual(sortedLines(z?.out ?? ""));
    // A running oneshot is Running on both.
    expect(h?.out).toContain("slow: Running\n");
  });

  test("status of each service, pids aside", async () => {
    for (const n of ["web", "dep", "once", "slow"]) expect((await same("status", n)).code).toBe(0);
  });

  test("refusals: the same text on stderr, exit 1", async () => {
    for (const args of [
      ["status", "nope"],
      ["start", "nope"],
      ["stop", "nope"],
      ["forget", "nope"],
      ["monitor", "nope"],
      ["kill", "nope", "SIGTERM"],
      ["kill", "web", "SIGNOPE"],
      ["kill", "web", "9"],
      ["forget", "web"],
      ["monitor", "web"],
      ["log", "-s", "nope"],
      ["restart", "nope"],
    ]) {
      const r = await same(...args);
      expect({ args, code: r.code, err: r.err.length > 0 }).toEqual({ args, code: 1, err: true });
    }
  });

  test("hero-init's CLI on hero-init (JSON-RPC) prints what zinit's CLI prints on zinit", async () => {
    for (const args of [
      ["status", "web"],
      ["status", "nope"],
      ["kill", "web", "SIGNOPE"],
      ["forget", "web"],
      ["monitor", "web"],
      ["monitor", "nope"],
      ["log", "-s", "nope"],
      ["restart", "nope"],
    ]) {
      const z = norm(await zinitCli(zinit.sock, ...args));
      const h = norm(await heroCli(hero.sock, ...args));
      expect({ args, ...h }).toEqual({ args, ...z });
    }
    const [z, h] = [await zinitCli(zinit.sock, "list"), await heroCli(hero.sock, "list")];
    expect(sortedLines(h.out)).toEqual(sortedLines(z.out));
    // `zinit` alone is `list`; `log --snapshot` ends.
    expect(sortedLines((await heroCli(hero.sock)).out)).toEqual(sortedLines(z.out));
    const zl = await zinitCli(zinit.sock, "log", "--snapshot", "once");
    const hl = await heroCli(hero.sock, "log", "--snapshot", "once");
    expect({ code: hl.code, lines: logLines(hl.out) }).toEqual({
      code: 0,
      lines: logLines(zl.out),
    });
  });

  test("stop, then the state zinit shows for a SIGTERM'd process; kill on a down service", async () => {
    await same("stop", "dep");
    const down = 'state: "Error(Signaled(Pid(';
    await Promise.all([statusShows(zinit, "dep", down), statusShows(hero, "dep", down)]);
    const st = await same("status", "dep");
    expect(st.out).toContain('state: "Error(Signaled(Pid(N), SIGTERM, false))"\ntarget: Down\n');
    expect((await same("kill", "dep", "SIGTERM")).err).toBe('service "dep" is down\n');
  });

  test("start, kill (restarted: its target stays Up)", async () => {
    await same("start", "dep");
    await Promise.all([settle(zinit), settle(hero)]);
    await same("status", "dep");
    await same("kill", "dep", "SIGKILL");
    await Bun.sleep(200);
    await Promise.all([settle(zinit), settle(hero)]);
    await same("status", "dep");
  });

  test("restart (zinit's CLI: stop, poll the status, start)", async () => {
    expect((await same("restart", "web")).code).toBe(0);
    await Promise.all([settle(zinit), settle(hero)]);
  });

  test("forget a stopped service, then monitor it again", async () => {
    await same("stop", "dep");
    await Promise.all([statusShows(zinit, "dep", "pid: 0"), statusShows(hero, "dep", "pid: 0")]);
    expect((await same("forget", "dep")).code).toBe(0);
    expect((await same("status", "dep")).err).toBe('service name "dep" unknown\n');
    expect((await same("monitor", "dep")).code).toBe(0);
    await Promise.all([settle(zinit), settle(hero)]);
  });

  test("log -s: the same lines (zinit's start markers included), filtered by service", async () => {
    const [z, h] = await both("log", "-s");
    expect(h?.code).toBe(0);
    expect(logLines(h?.out ?? "")).toEqual(logLines(z?.out ?? ""));
    expect(h?.out).toContain("[+] once: once\n");
    expect(h?.out).toContain("[-] web: ------------ [start] ------------\n");
    const [zw, hw] = await both("log", "-s", "web");
    expect(logLines(hw?.out ?? "")).toEqual(logLines(zw?.out ?? ""));
    expect(logLines(hw?.out ?? "").every((l) => l.slice(4).startsWith("web: "))).toBe(true);
  });

  test("log (following): new lines of the service arrive", async () => {
    const followers = [
      spawnCli("zinit", zinit.sock, "log", "web"),
      spawnCli("zinit", hero.sock, "log", "web"),
    ];
    try {
      const his = () => followers.map((f) => f.out().split("[+] web: hi\n").length - 1);
      const before = await waitFor(() => his().every((n) => n > 0) && his(), "the history");
      await Promise.all([
        zinitCli(zinit.sock, "restart", "web"),
        zinitCli(hero.sock, "restart", "web"),
      ]);
      await waitFor(
        () => his().every((n, i) => n > (before[i] as number)) || undefined,
        "a new line",
      );
    } finally {
      await Promise.all(followers.map((f) => f.stop()));
    }
  });

  test("the legacy protocol, raw: zinit's replies to odd lines", async () => {
    const lines = [
      "\n",
      "list extra\n",
      "status web extra\n",
      "kill web\n",
      "kill\n",
      'status "web\n',
      "status 'web'\n",
      "status web # comment\n",
      "#list\n",
      "log snapshot extra\n",
      "log a b\n",
      "frobnicate\n",
      "service_list\n",
    ];
    for (const line of lines) {
      const [z, h] = await Promise.all([legacy(zinit.sock, line), legacy(hero.sock, line)]);
      const n = (v: unknown) =>
        JSON.parse(normalise(JSON.stringify(v)).replace(/"pid":\d+/g, '"pid":0'));
      expect({ line, reply: n(h) }).toEqual({ line, reply: n(z) });
    }
    // hero-init's own: `restart NAME` (zinit 0.2.14: unknown command).
    expect(await legacy(zinit.sock, "restart web\n")).toEqual({
      state: "error",
      body: "unknown command 'restart' or wrong arguments count",
    });
  });

  test("shutdown: exit 0, and both daemons end", async () => {
    await same("shutdown");
    await Promise.all([zinit.proc.exited, hero.proc.exited]);
  });

  test("reboot: exit 0, and both daemons end", async () => {
    const pair = await Promise.all([startDaemon("zinit", SERVICES), startDaemon("hero", SERVICES)]);
    try {
      const rs = await Promise.all(pair.map((d) => zinitCli(d.sock, "reboot")));
      expect(rs.map(norm)).toEqual([rs[0], rs[0]].map((r) => norm(r as CliResult)));
      expect(rs[0]?.code).toBe(0);
      await Promise.all(pair.map((d) => d.proc.exited));
    } finally {
      await Promise.all(pair.map((d) => d.stop()));
    }
  });
});

describe("(b) hero-init's CLI against the real zinit 0.2.14 daemon: as zinit's own CLI", () => {
  let zinit: Daemon;
  /** The same command by both CLIs on the zinit daemon: [zinit's CLI, hero-init's]. */
  const same = async (...args: string[]) => {
    const z = norm(await zinitCli(zinit.sock, ...args));
    const h = norm(await heroCli(zinit.sock, ...args));
    expect({ args, ...h }).toEqual({ args, ...z });
    return z;
  };

  beforeAll(async () => {
    zinit = await startDaemon("zinit", SERVICES);
    await settle(zinit);
  });
  afterAll(async () => {
    await zinit?.stop();
  });

  test("list: the same lines (each CLI prints the order it got)", async () => {
    const z = await zinitCli(zinit.sock, "list");
    const h = await heroCli(zinit.sock, "list");
    expect([h.code, h.err, h.out.split("\n")[0]]).toEqual([0, "", "---"]);
    expect(sortedLines(h.out)).toEqual(sortedLines(z.out));
  });

  test("status, refusals, and no command at all (zinit runs list)", async () => {
    for (const n of ["web", "dep", "once", "slow"]) await same("status", n);
    for (const args of [
      ["status", "nope"],
      ["start", "nope"],
      ["stop", "nope"],
      ["forget", "web"],
      ["monitor", "web"],
      ["monitor", "nope"],
      ["kill", "nope", "SIGTERM"],
      ["kill", "web", "SIGNOPE"],
      ["log", "-s", "nope"],
      ["log", "--snapshot", "nope"],
    ])
      expect((await same(...args)).code).toBe(1);
    expect(sortedLines((await heroCli(zinit.sock)).out)).toEqual(
      sortedLines((await zinitCli(zinit.sock)).out),
    );
  });

  test("stop, kill on a down service, start, kill, restart, forget, monitor", async () => {
    await same("stop", "dep");
    await statusShows(zinit, "dep", "pid: 0");
    await same("status", "dep");
    await same("kill", "dep", "SIGTERM");
    await same("start", "dep");
    await settle(zinit);
    // Signals are sent by each CLI in turn: the daemon restarts the service each time.
    expect((await heroCli(zinit.sock, "kill", "dep", "SIGKILL")).code).toBe(0);
    await Bun.sleep(200);
    await settle(zinit);
    expect(await heroCli(zinit.sock, "restart", "web")).toEqual({ code: 0, out: "", err: "" });
    await settle(zinit);
    await same("stop", "dep");
    await statusShows(zinit, "dep", "pid: 0");
    expect(await heroCli(zinit.sock, "forget", "dep")).toEqual({ code: 0, out: "", err: "" });
    await same("status", "dep");
    expect(await heroCli(zinit.sock, "monitor", "dep")).toEqual({ code: 0, out: "", err: "" });
    await settle(zinit);
  });

  test("log -s and log -s NAME: the same lines; log follows", async () => {
    for (const args of [
      ["log", "-s"],
      ["log", "--snapshot", "web"],
      ["log", "-s", "once"],
    ]) {
      const z = await zinitCli(zinit.sock, ...args);
      const h = await heroCli(zinit.sock, ...args);
      // Distinct lines: a run's lines may still be arriving between the two snapshots.
      const distinct = (out: string) => [...new Set(sortedLines(out))];
      expect({ args, code: h.code, lines: distinct(h.out) }).toEqual({
        args,
        code: 0,
        lines: distinct(z.out),
      });
    }
    const f = spawnCli("hero", zinit.sock, "log", "web");
    try {
      await waitFor(() => f.out().includes("[+] web: hi\n"), "the history");
      const n = f.out().split("[+] web: hi\n").length;
      await zinitCli(zinit.sock, "restart", "web");
      await waitFor(() => f.out().split("[+] web: hi\n").length > n, "a new line");
      expect(
        f
          .out()
          .split("\n")
          .filter(Boolean)
          .every((l) => l.slice(4).startsWith("web: ")),
      ).toBe(true);
    } finally {
      await f.stop();
    }
  });

  test("stats is JSON-RPC only: an error against zinit 0.2.14 (whose CLI has no stats), exit 1", async () => {
    const h = await heroCli(zinit.sock, "stats", "web");
    expect(h.code).toBe(1);
    expect(h.err).toContain("legacy protocol");
    expect((await zinitCli(zinit.sock, "stats", "web")).code).toBe(1);
  });

  test("no daemon: zinit's message, exit 1", async () => {
    const absent = `${zinit.dir}/absent.sock`;
    const z = await zinitCli(absent, "list");
    const h = await heroCli(absent, "list");
    expect(h).toEqual(z);
    expect(h.code).toBe(1);
  });

  test("shutdown and reboot: exit 0, the daemon ends", async () => {
    for (const cmd of ["shutdown", "reboot"]) {
      const d = await startDaemon("zinit", SERVICES);
      try {
        expect(await heroCli(d.sock, cmd)).toEqual({ code: 0, out: "", err: "" });
        await d.proc.exited;
      } finally {
        await d.stop();
      }
    }
  });
});
