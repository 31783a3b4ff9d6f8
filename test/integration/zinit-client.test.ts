/**
 * zinit drop-in, zinit's own Rust client: the zinit-client crate 0.4.0
 * from crates.io (test/zinit-client: zclient, its ZinitClient as a command
 * line; built by scripts/build-vendor.sh) drives every method the crate
 * has against hero-init (PID 1 of a pid namespace, `zinit -s SOCK init -c
 * DIR --container`), and the same calls against the real zinit 0.2.14
 * daemon with the same service files (test/helpers/zinit-pair.ts).
 *
 * How the crate talks (its source): it probes with a JSON-RPC service_list
 * and uses JSON-RPC (zinit ≥ 0.2.25) when the reply carries
 * `"jsonrpc":"2.0"`, else zinit 0.2.14's raw commands. hero-init answers
 * the probe, so the crate speaks JSON-RPC to it and raw commands to zinit
 * 0.2.14: results must match; errors are the protocol's (JSON-RPC: a
 * JsonRpcError with zinit 0.2.28's code from its openrpc.json; raw: the
 * variant the crate reads from zinit 0.2.14's text). logs(), shutdown()
 * and reboot() always use raw commands (`log`, `log snapshot`, `shutdown`,
 * `reboot`), which hero-init serves on the same socket.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type Daemon, startDaemon, waitFor } from "../helpers/zinit-pair.ts";
import { vendorBinary, vendorSourceFile } from "../vendor.ts";

setDefaultTimeout(90_000);

const ZCLIENT = vendorBinary("zinit-client");

const SERVICES = {
  web: `exec: sh -c "echo hi; echo err >&2; exec sleep 1000"\n`,
  once: `exec: sh -c "echo once"\noneshot: true\n`,
  dep: "exec: sleep 1001\nafter: [web]\n",
  slow: "exec: sleep 1002\noneshot: true\n",
};
const SETTLED = { dep: "Running", once: "Success", slow: "Running", web: "Running" };

interface ZResult {
  code: number;
  // biome-ignore lint/suspicious/noExplicitAny: zclient's JSON, checked by the tests
  out: any;
}

/** One call of the crate (`zclient SOCK args…`): its exit code and its JSON line. */
async function zclient(sock: string, ...args: string[]): Promise<ZResult> {
  const p = Bun.spawn([ZCLIENT, sock, ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  try {
    return { code, out: JSON.parse(out) };
  } catch {
    throw new Error(`zclient ${args.join(" ")}: exit ${code}, not JSON: ${out}${err}`);
  }
}

/** A ServiceStatus with its pid reduced to whether there is one (pids differ between daemons). */
const shape = (s: { pid: number }) => ({ ...s, pid: s.pid > 0 });

/** zinit 0.2.28's error codes, by method and message, from its openrpc.json. */
const OPENRPC = JSON.parse(
  vendorSourceFile("zinit-0.2.28.tar.gz", "zinit-0.2.28/openrpc.json"),
) as { methods: { name: string; errors?: { code: number; message: string }[] }[] };
function openrpcCode(method: string, message: string): number {
  const e = OPENRPC.methods
    .find((m) => m.name === method)
    ?.errors?.find((x) => x.message === message);
  if (!e) throw new Error(`zinit 0.2.28's openrpc.json has no "${message}" for ${method}`);
  return e.code;
}

/** The crate's error for a JSON-RPC error reply of `code`. */
const rpcError = (code: number) => ({
  code: 1,
  out: expect.objectContaining({ error: "JsonRpcError", code }),
});

describe("zinit-client 0.4.0: hero-init answers as zinit does", () => {
  let zinit: Daemon;
  let hero: Daemon;
  /** The same call on both daemons: [on zinit 0.2.14, on hero-init]. */
  const both = (...args: string[]) =>
    Promise.all([zclient(zinit.sock, ...args), zclient(hero.sock, ...args)]);
  const settle = (d: Daemon, want: Record<string, string> = SETTLED) =>
    waitFor(
      async () => {
        const r = await zclient(d.sock, "list");
        return Bun.deepEquals(r.out, want) || undefined;
      },
      `${d.kind}: ${JSON.stringify(want)}`,
    );
  /** Waits until `name`'s status (by the crate) matches `want`; returns it. */
  const statusIs = (d: Daemon, name: string, want: (s: ZResult["out"]) => boolean) =>
    waitFor(async () => {
      const r = await zclient(d.sock, "status", name);
      return (r.code === 0 && want(r.out) && r.out) || undefined;
    }, `${d.kind}: status of ${name}`);

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

  test("list: the same services and states", async () => {
    const [z, h] = await both("list");
    expect(z).toEqual({ code: 0, out: SETTLED });
    expect(h).toEqual(z);
  });

  test("status and get_service: the same ServiceStatus (name, state, target, after), pids aside", async () => {
    for (const name of ["web", "dep", "once", "slow"])
      for (const call of ["status", "get"]) {
        const [z, h] = await both(call, name);
        expect({ call, code: h.code, out: shape(h.out) }).toEqual({
          call,
          code: z.code,
          out: shape(z.out),
        });
      }
    const dep = (await zclient(hero.sock, "status", "dep")).out;
    expect(dep).toEqual({
      name: "dep",
      pid: expect.any(Number),
      state: "Running",
      target: "Up",
      after: { web: "Running" },
    });
    expect(dep.pid).toBeGreaterThan(0);
    expect((await zclient(hero.sock, "status", "once")).out).toMatchObject({
      pid: 0,
      state: "Success",
    });
  });

  test("the crate speaks JSON-RPC to hero-init: an unknown service is zinit 0.2.28's -32000 (zinit 0.2.14: UnknownService)", async () => {
    const notFound = openrpcCode("service_status", "Service not found");
    for (const args of [
      ["status", "nope"],
      ["get", "nope"],
      ["start", "nope"],
      ["stop", "nope"],
      ["forget", "nope"],
      ["kill", "nope", "SIGTERM"],
    ]) {
      const [z, h] = await both(...args);
      expect({ args, ...z }).toEqual({
        args,
        code: 1,
        out: { error: "UnknownService", message: "Unknown service: nope" },
      });
      expect({ args, ...h }).toEqual({ args, ...rpcError(notFound) });
      expect(h.out.rpc_message).toContain("service 'nope' not found");
      expect(h.out.data).toMatchObject({ code_name: "ServiceNotFound", service: "nope" });
    }
  });

  test("refusals: already monitored, is up, invalid signal, no such file (zinit 0.2.28's codes)", async () => {
    const cases: [string[], string, string, unknown][] = [
      [
        ["monitor", "web"],
        "service_monitor",
        "Service already monitored",
        "ServiceAlreadyMonitored",
      ],
      [["forget", "web"], "service_forget", "Service is up", "ServiceIsUp"],
      [["kill", "web", "SIGNOPE"], "service_kill", "Invalid signal", "ServiceError"],
      [["monitor", "nope"], "service_monitor", "Config error", "ServiceError"],
    ];
    for (const [args, method, message, zinitVariant] of cases) {
      const [z, h] = await both(...args);
      expect({ args, code: z.code, error: z.out.error }).toEqual({
        args,
        code: 1,
        error: zinitVariant,
      });
      expect({ args, ...h }).toEqual({ args, ...rpcError(openrpcCode(method, message)) });
    }
  });

  test("stop: null, then the same stopped status; kill on a down service is refused", async () => {
    expect(await both("stop", "dep")).toEqual([
      { code: 0, out: null },
      { code: 0, out: null },
    ]);
    const down = (s: ZResult["out"]) => s.pid === 0 && s.target === "Down";
    const [z, h] = await Promise.all([statusIs(zinit, "dep", down), statusIs(hero, "dep", down)]);
    // Error(Signaled(…)) is not a state the crate knows: it reads Unknown from both.
    expect(z).toEqual({
      name: "dep",
      pid: 0,
      state: "Unknown",
      target: "Down",
      after: { web: "Running" },
    });
    expect(h).toEqual(z);
    const [zk, hk] = await both("kill", "dep", "SIGTERM");
    expect(zk).toEqual({
      code: 1,
      out: { error: "ServiceIsDown", message: "Service is down: dep" },
    });
    expect(hk).toEqual(rpcError(openrpcCode("service_kill", "Service is down")));
  });

  test("start, then kill: the service is restarted (its target stays Up)", async () => {
    expect(await both("start", "dep")).toEqual([
      { code: 0, out: null },
      { code: 0, out: null },
    ]);
    await Promise.all([settle(zinit), settle(hero)]);
    const before = await Promise.all([zinit, hero].map((d) => zclient(d.sock, "status", "dep")));
    expect(await both("kill", "dep", "SIGKILL")).toEqual([
      { code: 0, out: null },
      { code: 0, out: null },
    ]);
    await Promise.all(
      [zinit, hero].map((d, i) =>
        statusIs(d, "dep", (s) => s.state === "Running" && s.pid !== before[i]?.out.pid),
      ),
    );
  });

  test("restart (the crate: stop, poll the status until pid 0 and Down, start): a new process", async () => {
    const before = await Promise.all([zinit, hero].map((d) => zclient(d.sock, "status", "web")));
    expect(await both("restart", "web")).toEqual([
      { code: 0, out: null },
      { code: 0, out: null },
    ]);
    await Promise.all(
      [zinit, hero].map((d, i) =>
        statusIs(
          d,
          "web",
          (s) => s.state === "Running" && s.target === "Up" && s.pid !== before[i]?.out.pid,
        ),
      ),
    );
  });

  test("forget a stopped service (then unknown), monitor it again", async () => {
    await both("stop", "dep");
    const down = (s: ZResult["out"]) => s.pid === 0;
    await Promise.all([statusIs(zinit, "dep", down), statusIs(hero, "dep", down)]);
    expect(await both("forget", "dep")).toEqual([
      { code: 0, out: null },
      { code: 0, out: null },
    ]);
    const [z, h] = await both("list");
    expect(Object.keys(z.out).sort()).toEqual(["once", "slow", "web"]);
    expect(h).toEqual(z);
    const [zs, hs] = await both("status", "dep");
    expect(zs.out.error).toBe("UnknownService");
    expect(hs).toEqual(rpcError(openrpcCode("service_status", "Service not found")));
    expect(await both("monitor", "dep")).toEqual([
      { code: 0, out: null },
      { code: 0, out: null },
    ]);
    await Promise.all([settle(zinit), settle(hero)]);
  });

  test("create_service (JSON-RPC only), get_service, delete_service", async () => {
    const spec = JSON.stringify({ exec: "sleep 1003", after: ["web"] });
    // zinit 0.2.14 cannot: the crate refuses before sending anything.
    const zc = await zclient(zinit.sock, "create", "made", spec);
    expect(zc).toMatchObject({ code: 1, out: { error: "FeatureNotSupported" } });
    expect(existsSync(join(zinit.dir, "etc/made.yaml"))).toBe(false);

    const file = join(hero.dir, "etc/made.yaml");
    expect(await zclient(hero.sock, "create", "made", spec)).toEqual({ code: 0, out: null });
    expect(readFileSync(file, "utf8")).toContain("sleep 1003");
    // As zinit 0.2.28: written, not monitored until service_monitor.
    expect(await zclient(hero.sock, "get", "made")).toEqual(
      rpcError(openrpcCode("service_status", "Service not found")),
    );
    expect(await zclient(hero.sock, "create", "made", spec)).toEqual(
      rpcError(openrpcCode("service_create", "Service already exists")),
    );
    expect(await zclient(hero.sock, "monitor", "made")).toEqual({ code: 0, out: null });
    const st = await statusIs(hero, "made", (s) => s.state === "Running");
    expect(st).toMatchObject({ name: "made", target: "Up", after: { web: "Running" } });
    expect((await zclient(hero.sock, "get", "made")).out).toEqual(st);

    // delete: the crate stops it, polls until it is down, forgets it, then deletes its file.
    expect(await zclient(hero.sock, "delete", "made")).toEqual({ code: 0, out: null });
    expect(existsSync(file)).toBe(false);
    expect(await zclient(hero.sock, "status", "made")).toEqual(
      rpcError(openrpcCode("service_status", "Service not found")),
    );
    await settle(hero);
    // On zinit 0.2.14 delete is stop + forget (no file deletion by the legacy protocol).
    const [zd, hd] = await both("delete", "nope");
    expect(zd).toEqual({
      code: 1,
      out: { error: "UnknownService", message: "Unknown service: nope" },
    });
    expect(hd).toEqual(rpcError(openrpcCode("service_forget", "Service not found")));
  });

  test("logs: a snapshot ends, a follow stays open; the crate keeps none of the ring's lines, from either", async () => {
    // The crate parses its daemon's console format ("zinit: LEVEL (target) msg"),
    // not the socket's `[+] name: line`: every ring line is dropped, from zinit as from hero-init.
    for (const args of [["logs"], ["logs", "web"], ["follow", "2"], ["follow", "2", "web"]]) {
      const [z, h] = await both(...args);
      expect({ args, ...h }).toEqual({ args, ...z });
    }
    expect((await zclient(hero.sock, "logs")).out).toEqual([]);
    expect((await zclient(hero.sock, "follow", "2")).out).toEqual({ entries: [], ended: false });
  });
});

describe("zinit-client 0.4.0: shutdown and reboot (raw commands)", () => {
  test("each answers null, and both daemons end", async () => {
    for (const cmd of ["shutdown", "reboot"]) {
      const pair = await Promise.all([
        startDaemon("zinit", SERVICES),
        startDaemon("hero", SERVICES),
      ]);
      try {
        const rs = await Promise.all(pair.map((d) => zclient(d.sock, cmd)));
        expect({ cmd, rs }).toEqual({
          cmd,
          rs: [
            { code: 0, out: null },
            { code: 0, out: null },
          ],
        });
        await Promise.all(pair.map((d) => d.proc.exited));
      } finally {
        await Promise.all(pair.map((d) => d.stop()));
      }
    }
  });
});
