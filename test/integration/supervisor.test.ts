/**
 * Supervisor integration: the real dist/hero-init in `init` mode (not PID 1)
 * inside a pid namespace, driven through the zinit CLI and both control
 * protocols. Services run in a real cgroup v2 subtree when the host has one.
 * Each describe block has a daemon of its own (test/helpers/init-daemon.ts),
 * and so has each test that changes what another test reads: every test
 * passes alone and in any order.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BIN,
  type DaemonEnv,
  hostPids,
  type SupervisorDaemon,
  startDaemon,
} from "../helpers/init-daemon.ts";

setDefaultTimeout(60_000);

/** The service set every daemon of this file starts with. */
const services = ({ S, dir }: DaemonEnv): Record<string, string> => ({
  base: `exec: sh -c "echo base up; exec sleep ${S(0)}"\n`,
  setup: `exec: sh -c "echo setup done"\noneshot: true\nafter: [base]\n`,
  web: `exec: sleep ${S(1)}\nafter:\n  - setup\ntest: "true"\n`,
  waiter: `exec: sleep ${S(2)}\nafter: [ghost]\n`,
  forker: `exec: sh -c "setsid sleep ${S(3)} & echo forked; exec sleep ${S(4)}"\nshutdown_timeout: 3\n`,
  // Each start appends its time (ns) so the test can measure the backoff's spacing.
  storm: `exec: sh -c "date +%s%N >> ${join(dir, "storm.times")}; exit 7"\nrestart:\n  delay: 20\n  limit: 4\n  window: 60\n`,
  broken: `exec: [nope\n`,
  cyc1: `exec: sleep ${S(5)}\nafter: [cyc2]\n`,
  cyc2: `exec: sleep ${S(5)}\nafter: [cyc1]\n`,
});

/** A daemon with the service set (some replaced by `changed`), once `web` (after base and setup) runs. */
async function freshDaemon(
  changed: (env: DaemonEnv) => Record<string, string> = () => ({}),
): Promise<SupervisorDaemon> {
  const d = await startDaemon((env) => ({ ...services(env), ...changed(env) }));
  try {
    await d.waitFor(
      async () => (await d.cli("status", "web")).out.includes("state: Running") || undefined,
    );
  } catch (e) {
    await d.stop();
    throw e;
  }
  return d;
}

/** The daemon of the enclosing describe block: started before its first test, stopped after its last. */
function blockDaemon(): () => SupervisorDaemon {
  let d: SupervisorDaemon | undefined;
  beforeAll(async () => {
    d = await freshDaemon();
  });
  afterAll(async () => {
    await d?.stop();
  });
  return () => {
    if (!d) throw new Error("the block's daemon did not start");
    return d;
  };
}

/** Runs `fn` against a daemon of its own (for a test that changes what others read), then stops it. */
async function ownDaemon(
  fn: (d: SupervisorDaemon) => Promise<void>,
  changed?: (env: DaemonEnv) => Record<string, string>,
): Promise<void> {
  const d = await freshDaemon(changed);
  try {
    await fn(d);
  } finally {
    await d.stop();
  }
}

describe("zinit CLI against the running daemon", () => {
  const daemon = blockDaemon();

  test("list prints zinit's YAML, sorted, with every state kind", async () => {
    const r = await daemon().cli("list");
    expect(r.code).toBe(0);
    // serde_yaml 0.8, as zinit prints it: "---", one "name: State" per line, a final newline,
    // values the YAML emitter would misread double-quoted.
    const lines = r.out.split("\n");
    expect(lines[0]).toBe("---");
    expect(r.out.endsWith("\n")).toBe(true);
    expect(lines).toContain("base: Running");
    expect(lines).toContain("setup: Success");
    expect(lines).toContain("web: Running");
    expect(lines).toContain("waiter: Blocked");
    const broken = lines.find((l) => l.startsWith("broken: ")) ?? "";
    expect(broken).toMatch(/^broken: "Error\(config: .*broken\.yaml.*\)"$/);
    expect(JSON.parse(broken.slice("broken: ".length))).toStartWith("Error(config: ");
    expect(lines).toContain("cyc1: Blocked");
    const names = lines
      .slice(1)
      .filter(Boolean)
      .map((l) => l.split(":")[0]);
    expect(names).toEqual([...names].sort());
  });

  test("status golden output", async () => {
    const r = await daemon().cli("status", "web");
    const pid = /pid: (\d+)/.exec(r.out)?.[1];
    expect(Number(pid)).toBeGreaterThan(1);
    expect(r.out).toBe(
      `---\nname: web\npid: ${pid}\nstate: Running\ntarget: Up\nafter:\n  setup: Success\n`,
    );
  });

  test("--json", async () => {
    const r = await daemon().cli("--json", "status", "waiter");
    expect(JSON.parse(r.out)).toMatchObject({
      name: "waiter",
      pid: 0,
      state: "Blocked",
      target: "Up",
      after: { ghost: "Unknown" },
    });
  });

  test("errors: unknown service → stderr, exit 1", async () => {
    const r = await daemon().cli("status", "nope");
    expect(r.code).toBe(1);
    // zinit's CLI's words.
    expect(r.err).toBe('service name "nope" unknown\n');
  });

  test("a dependency cycle is reported and its members stay Blocked", async () => {
    expect(daemon().out()).toContain("dependency cycle: cyc1 → cyc2 → cyc1");
  });

  test("stop waits until a double-forked, setsid'd daemon is gone too", () =>
    ownDaemon(async ({ cli, waitFor, S }) => {
      await waitFor(async () => hostPids(`sleep ${S(3)}$`).length === 1 || undefined);
      const r = await cli("stop", "forker");
      expect(r.code).toBe(0);
      // When stop returns, the whole tree is gone (the escaped grandchild included).
      expect(hostPids(`sleep ${S(3)}$`)).toEqual([]);
      expect(hostPids(`sleep ${S(4)}$`)).toEqual([]);
      expect((await cli("status", "forker")).out).toContain("target: Down");
    }));

  test("start, kill (target stays Up: restarted), restart, forget, monitor", () =>
    ownDaemon(async ({ cli, waitFor }) => {
      const pidOf = async (n: string) =>
        Number(/pid: (\d+)/.exec((await cli("status", n)).out)?.[1]);
      // Start from a stopped service.
      expect((await cli("stop", "forker")).code).toBe(0);
      expect((await cli("status", "forker")).out).toContain("target: Down");
      expect((await cli("start", "forker")).code).toBe(0);
      const p1 = await waitFor(async () => (await pidOf("forker")) || undefined);
      expect((await cli("kill", "forker", "SIGKILL")).code).toBe(0);
      const p2 = await waitFor(async () => {
        const p = await pidOf("forker");
        return p && p !== p1 ? p : undefined;
      });
      expect(p2).not.toBe(p1);
      expect((await cli("restart", "forker")).code).toBe(0);
      const p3 = await waitFor(async () => (await pidOf("forker")) || undefined);
      expect(p3).not.toBe(p2);
      expect((await cli("forget", "forker")).code).toBe(1); // still up
      await cli("stop", "forker");
      expect((await cli("forget", "forker")).code).toBe(0);
      expect((await cli("status", "forker")).code).toBe(1);
      expect((await cli("monitor", "forker")).code).toBe(0);
      await waitFor(
        async () => (await cli("status", "forker")).out.includes("state: Running") || undefined,
      );
    }));

  test("a restart storm is throttled and ends in a visible Failure with the reason", () =>
    ownDaemon(
      async ({ cli, rpc, waitFor, out: daemonOut, dir }) => {
        const out = await waitFor(async () => {
          const r = await rpc("service_status", ["storm"]);
          return String(r.result.state).startsWith("Failure") ? r : undefined;
        });
        expect(out.result.state).toBe("Failure");
        // A service that exited shows zinit's Debug rendering of the wait status.
        await cli("kill", "base", "SIGKILL");
        const killed = await waitFor(async () => {
          const st = (await rpc("service_status", ["base"])).result.state as string;
          return st.startsWith("Error(") ? st : undefined;
        });
        expect(killed).toMatch(/^Error\(Signaled\(Pid\(\d+\), SIGKILL, false\)\)$/);
        await waitFor(
          async () =>
            (await rpc("service_status", ["base"])).result.state === "Running" || undefined,
        );
        expect(daemonOut()).toMatch(/storm: gave up: restarted 4 times within 60 s \(limit 4\)/);
        // One start and 4 restarts, spaced by at least the doubling delay (20, 40, 80, 160 ms).
        const starts = readFileSync(join(dir, "storm.times"), "utf8")
          .trim()
          .split("\n")
          .map(Number);
        expect(starts.length).toBe(5);
        const gapsMs = starts.slice(1).map((t, i) => (t - (starts[i] as number)) / 1e6);
        for (const [i, g] of gapsMs.entries()) expect(g).toBeGreaterThanOrEqual(20 * 2 ** i - 2);
      },
      ({ S }) => ({
        // base waits 3 s before its restart, so that polling sees its Error state even on a
        // loaded machine (the default 100 ms can fall between two polls).
        base: `exec: sh -c "echo base up; exec sleep ${S(0)}"\nrestart:\n  delay: 3000\n`,
      }),
    ));

  test("log -s prints the ring in zinit's format, filtered", async () => {
    const r = await daemon().cli("log", "-s", "base");
    expect(r.code).toBe(0);
    expect(r.out).toContain("[+] base: base up\n");
    expect(r.out).not.toContain("setup done");
  });
});

describe("legacy line protocol", () => {
  const daemon = blockDaemon();

  test("status → {state: ok, body} and the server closes", async () => {
    const r = JSON.parse(await daemon().raw("status web\n"));
    expect(r).toMatchObject({
      state: "ok",
      body: { name: "web", state: "Running", target: "Up", after: { setup: "Success" } },
    });
  });
  test("list", async () => {
    expect(JSON.parse(await daemon().raw("list\n")).body).toMatchObject({
      base: "Running",
      setup: "Success",
    });
  });
  test("errors", async () => {
    const { raw } = daemon();
    // zinit 0.2.14's texts.
    expect(JSON.parse(await raw("status ghost\n"))).toEqual({
      state: "error",
      body: 'service name "ghost" unknown',
    });
    expect(JSON.parse(await raw("frobnicate\n"))).toEqual({
      state: "error",
      body: "unknown command 'frobnicate' or wrong arguments count",
    });
  });
});

describe("JSON-RPC 2.0", () => {
  // Tests here that create a service create one of their own name and sleep; a test that
  // changes a service of the set (waiter, setup) has a daemon of its own.
  const daemon = blockDaemon();

  test("service_list and error codes", async () => {
    const { rpc } = daemon();
    expect((await rpc("service_list")).result).toMatchObject({ base: "Running" });
    expect((await rpc("service_status", ["ghost"])).error.code).toBe(-32000);
    expect((await rpc("no_such_method")).error.code).toBe(-32601);
    expect((await rpc("service_status", [])).error.code).toBe(-32602);
    expect((await rpc("service_kill", ["base", "SIGNOPE"])).error.code).toBe(-32004);
  });

  test("malformed and huge requests get errors; the daemon keeps serving", async () => {
    const { raw, rpc } = daemon();
    expect(JSON.parse(await raw("{not json\n", false)).error.code).toBe(-32700);
    const huge = await raw(`${"x".repeat(2 * 1024 * 1024)}`);
    expect(huge).toContain("request longer than");
    expect((await rpc("service_list")).result.base).toBe("Running");
  });

  test("service_create, service_get, service_monitor, service_delete", async () => {
    const { rpc, waitFor, etc, S } = daemon();
    const created = await rpc("service_create", {
      name: "made",
      content: { exec: `sleep ${S(11)}`, oneshot: false },
    });
    expect(created.result).toContain("made");
    expect(readFileSync(join(etc, "made.yaml"), "utf8")).toContain(`sleep ${S(11)}`);
    expect((await rpc("service_get", ["made"])).result).toMatchObject({ exec: `sleep ${S(11)}` });
    expect((await rpc("service_create", ["made", { exec: "x" }])).error.code).toBe(-32007);
    // Content that is no service file: zinit's ConfigError (-32005, "Ensure content is valid according to schema").
    expect((await rpc("service_create", ["bad", { exec: 5 }])).error.code).toBe(-32005);
    expect((await rpc("service_create", ["../evil", { exec: "x" }])).error.code).toBe(-32602);
    expect((await rpc("service_monitor", ["made"])).result).toBeNull();
    await waitFor(
      async () => (await rpc("service_status", ["made"])).result.state === "Running" || undefined,
    );
    expect((await rpc("service_delete", ["made"])).error.code).toBe(-32002);
    await rpc("service_stop", ["made"]);
    expect((await rpc("service_delete", ["made"])).result).toContain("made");
    expect(existsSync(join(etc, "made.yaml"))).toBe(false);
  });

  test("uid/gid (hero-init extra): the exec helper drops privileges before exec", async () => {
    const { rpc, cli, waitFor } = daemon();
    await rpc("service_create", [
      "asuser",
      { exec: `sh -c "echo ids=$(id -u):$(id -g):$(id -G)"`, oneshot: true, uid: 1000, gid: 1001 },
    ]);
    expect((await rpc("service_monitor", ["asuser"])).result).toBeNull();
    await waitFor(
      async () => (await rpc("service_status", ["asuser"])).result.state === "Success" || undefined,
    );
    // No supplementary groups are kept from root.
    expect((await cli("log", "-s", "asuser")).out).toContain("[+] asuser: ids=1000:1001:1001\n");
    await rpc("service_forget", ["asuser"]);
  });

  test("a service blocked on an undefined dependency starts once that service appears", () =>
    ownDaemon(async ({ rpc, waitFor, S }) => {
      expect((await rpc("service_status", ["waiter"])).result.state).toBe("Blocked");
      await rpc("service_create", ["ghost", { exec: `sleep ${S(6)}` }]);
      expect((await rpc("service_monitor", ["ghost"])).result).toBeNull();
      await waitFor(
        async () =>
          (await rpc("service_status", ["waiter"])).result.state === "Running" || undefined,
      );
    }));

  test("service_stats reports the pid and cgroup children", async () => {
    const { rpc, waitFor, S } = daemon();
    // A service whose main process has one child in its cgroup.
    await rpc("service_create", [
      "statsvc",
      { exec: `sh -c "sleep ${S(7)} & exec sleep ${S(7)}"` },
    ]);
    await rpc("service_monitor", ["statsvc"]);
    // Both sleeps exist (the main process has exec'd): then ask.
    await waitFor(() => hostPids(`^sleep ${S(7)}$`).length === 2 || undefined);
    const r = (await rpc("service_stats", ["statsvc"])).result;
    expect(r.name).toBe("statsvc");
    // The daemon reports pids of its own pid namespace: map the host's (NSpid: host … ns).
    const mine = hostPids(`^sleep ${S(7)}$`).map((p) =>
      Number(/^NSpid:.*\s(\d+)$/m.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1]),
    );
    expect(mine.length).toBe(2);
    expect(mine).toContain(r.pid);
    expect(r.children.map((c: { pid: number }) => c.pid)).toEqual(mine.filter((p) => p !== r.pid));
    // zinit's memory_usage: the process's RSS in bytes (cgroup or not), each child's too.
    expect(r.memory_usage).toBeGreaterThan(0);
    expect(r.children.every((c: { memory_usage: number }) => c.memory_usage > 0)).toBe(true);
    await rpc("service_stop", ["statsvc"]);
    await rpc("service_delete", ["statsvc"]);
    expect(hostPids(`sleep ${S(7)}$`)).toEqual([]);
  });

  test("stream_subscribeLogs delivers new lines as notifications", () =>
    ownDaemon(async ({ sock, cli, waitFor }) => {
      let got = "";
      const s = await Bun.connect({
        unix: sock,
        socket: {
          data(_s, d) {
            got += d.toString();
          },
        },
      });
      s.write(
        `${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "stream_subscribeLogs", params: ["setup"] })}\n`,
      );
      await waitFor(() => got.includes('"result":') || undefined);
      await cli("restart", "setup");
      await waitFor(() => got.includes("setup done") || undefined);
      s.end();
      const notes = got
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((m) => m.method);
      // zinit's start marker of the new run first, then its line.
      for (const [i, result] of [
        "[-] setup: ------------ [start] ------------",
        "[+] setup: setup done",
      ].entries())
        expect(notes[i]).toMatchObject({
          jsonrpc: "2.0",
          method: "stream_subscribeLogs",
          params: { result },
        });
    }));

  test("rpc.discover returns an openrpc document", async () => {
    // zinit answers the document's JSON text.
    const r = JSON.parse((await daemon().rpc("rpc.discover")).result);
    expect(r.openrpc).toBeDefined();
    expect(r.methods.map((m: { name: string }) => m.name)).toContain("service_create");
  });
});

describe("fuzzing the control socket", () => {
  const daemon = blockDaemon();

  test("2,000 random requests on 200 connections: every one answered or closed, the daemon keeps serving", async () => {
    const { rawEx, rpc, proc } = daemon();
    let seed = 12345;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const pieces = [
      '{"jsonrpc":"2.0","id":1,"method":"service_status","params":["web"]}',
      "status web",
      "list",
      "{",
      "[",
      '"',
      "\0",
      "\xff",
      "kill web SIGNOPE",
      "log",
      '{"jsonrpc":"2.0","method":"service_stop","params":[]}',
    ];
    const ends = { line: 0, closed: 0, timeout: [] as string[] };
    for (let c = 0; c < 200; c++) {
      let payload = "";
      for (let k = 0; k < 10; k++) {
        const p = pieces[rnd(pieces.length)] as string;
        const at = rnd(p.length + 1);
        payload += `${p.slice(0, at)}${String.fromCharCode(rnd(256))}${p.slice(at)}${rnd(3) ? "\n" : ""}`;
      }
      const r = await rawEx(`${payload}\n`, false);
      // A hang (our 5 s timer) is a failure: every payload gets a reply line or a close.
      if (r.end === "timeout") ends.timeout.push(JSON.stringify(payload));
      else ends[r.end]++;
    }
    expect(ends.timeout).toEqual([]);
    expect(ends.line).toBeGreaterThan(0);
    expect((await rpc("service_list")).result.web).toBe("Running");
    expect(proc.exitCode).toBeNull();
  });
});

describe("stopping", () => {
  // Each test creates, stops and deletes a service of its own name and sleep.
  const daemon = blockDaemon();

  test("shutdown_timeout escalates to SIGKILL for a service that ignores SIGTERM", async () => {
    const { rpc, waitFor, S } = daemon();
    // SIGTERM is ignored by the shell and so by the sleep it execs.
    await rpc("service_create", [
      "stubborn",
      { exec: `sh -c "trap '' TERM; exec sleep ${S(8)}"`, shutdown_timeout: 2 },
    ]);
    await rpc("service_monitor", ["stubborn"]);
    await waitFor(() => hostPids(`^sleep ${S(8)}$`).length === 1 || undefined);
    const t0 = performance.now();
    await rpc("service_stop", ["stubborn"]);
    await waitFor(() => hostPids(`^sleep ${S(8)}$`).length === 0 || undefined, 20_000);
    // Not before the timeout: SIGTERM alone did not end it (a lower bound only).
    expect(performance.now() - t0).toBeGreaterThanOrEqual(1900);
    expect((await rpc("service_status", ["stubborn"])).result.state).not.toBe("Running");
    await rpc("service_forget", ["stubborn"]);
    await rpc("service_delete", ["stubborn"]);
  });

  test("leftovers in a service's cgroup are killed before it is restarted", async () => {
    const { rpc, waitFor, S, dir, cgroot } = daemon();
    if (!cgroot) throw new Error("this host has no cgroup v2 tree: the leftover kill needs one");
    const starts = join(dir, "leftover.starts");
    // Each run leaves a setsid'd sleep behind in its cgroup and exits 1.
    await rpc("service_create", [
      "leftover",
      {
        exec: `sh -c "echo x >> ${starts}; setsid sleep ${S(10)} & sleep 0.3; exit 1"`,
        restart: { delay: 100, limit: 0 },
      },
    ]);
    await rpc("service_monitor", ["leftover"]);
    await waitFor(() => {
      const n = existsSync(starts) ? readFileSync(starts, "utf8").split("\n").length - 1 : 0;
      return n >= 4 || undefined;
    }, 20_000);
    // Without the kill, one sleep per run would remain: 4 or more.
    expect(hostPids(`^sleep ${S(10)}$`).length).toBeLessThanOrEqual(1);
    await rpc("service_stop", ["leftover"]);
    await rpc("service_forget", ["leftover"]);
    await rpc("service_delete", ["leftover"]);
    await waitFor(() => hostPids(`^sleep ${S(10)}$`).length === 0 || undefined);
  });

  test("signal.stop: the service gets its own stop signal, not SIGTERM", async () => {
    const { rpc, waitFor, dir } = daemon();
    const got = join(dir, "stop-signal");
    await rpc("service_create", [
      "gentle",
      {
        exec: `sh -c "trap 'echo INT > ${got}; exit 0' INT; trap 'echo TERM > ${got}; exit 0' TERM; while :; do sleep 0.1; done"`,
        signal: { stop: "SIGINT" },
      },
    ]);
    await rpc("service_monitor", ["gentle"]);
    await waitFor(
      async () => (await rpc("service_status", ["gentle"])).result.state === "Running" || undefined,
    );
    await Bun.sleep(200); // let the shell install its traps
    await rpc("service_stop", ["gentle"]);
    await waitFor(() => existsSync(got) || undefined);
    expect(readFileSync(got, "utf8")).toBe("INT\n");
    await rpc("service_forget", ["gentle"]);
    await rpc("service_delete", ["gentle"]);
  });
});

describe("no daemon", () => {
  test("a clear message and exit 1", async () => {
    const p = Bun.spawnSync([
      BIN,
      "-s",
      join(tmpdir(), `hero-sup-absent-${process.pid}.sock`),
      "list",
    ]);
    expect(p.exitCode).toBe(1);
    // zinit's words.
    expect(p.stderr.toString()).toContain("is zinit listening on that socket?");
  });
});

describe("shutdown", () => {
  const daemon = blockDaemon();

  test("stops dependents before dependencies, refuses starts meanwhile (-32006), then the daemon exits", async () => {
    const { rpc, cli, waitFor, S, out, proc, sleeps } = daemon();
    // A service that ignores SIGTERM holds the shutdown open for its 3 s timeout.
    await rpc("service_create", [
      "holdup",
      { exec: `sh -c "trap '' TERM; exec sleep ${S(9)}"`, shutdown_timeout: 3 },
    ]);
    await rpc("service_monitor", ["holdup"]);
    await waitFor(() => hostPids(`^sleep ${S(9)}$`).length === 1 || undefined);
    const down = cli("shutdown");
    await waitFor(() => /shutdown: stopping/.test(out()) || undefined);
    const refused = await rpc("service_start", ["web"]);
    expect(refused.error?.code).toBe(-32006);
    expect((await down).code).toBe(0);
    await waitFor(async () => (proc.exitCode !== null ? true : undefined), 20_000);
    const order = [...out().matchAll(/shutdown: stopping (.*)/g)].map((m) => m[1]);
    const iWeb = order.findIndex((o) => o?.includes("web"));
    const iBase = order.findIndex((o) => o?.includes("base"));
    expect(iWeb).toBeGreaterThanOrEqual(0);
    expect(iWeb).toBeLessThan(iBase);
    expect(hostPids(sleeps)).toEqual([]);
  });
});
