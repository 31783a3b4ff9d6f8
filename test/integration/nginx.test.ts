/**
 * The documented nginx config (the ```nginx block of docs/bootstrap-server.md,
 * extracted, not copied) run by Debian's nginx as the current user on a
 * loopback port, serving the same tree as `hero-init serve`: the update
 * client's conditional GET gets a 304 for an unchanged manifest, a
 * download resumes with Range + If-Range, and both servers answer the same
 * requests the same way. The update engine follows a manifest served by
 * nginx: an unchanged poll is one 304, one changed binary of three is the
 * only artifact fetched and only its service restarts. scripts/setup.sh
 * installs nginx, so its absence fails the suite instead of skipping it.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatPublicKey, generateKey } from "../../lib/minisign.ts";
import { conditionalGet, download } from "../../update/download.ts";
import { runUpdate } from "../../update/engine.ts";
import { buildManifest, publishSigned } from "../../update/publish.ts";
import { type BootstrapServer, startServer } from "../../update/serve.ts";
import { nginxConfigFromDoc } from "../nginx-conf.ts";
import { freePort } from "../vm/qemu.ts";

setDefaultTimeout(30_000);
const NGINX = ["/usr/sbin/nginx", Bun.which("nginx")].find((p) => p && existsSync(p)) ?? null;
if (!NGINX) throw new Error("nginx is not installed: run scripts/setup.sh (apt-get install nginx)");

const tmp = mkdtempSync(join(tmpdir(), "hero-nginx-"));
const root = join(tmp, "root");
const N = 250_000;
const BIN = Uint8Array.from({ length: N }, (_, i) => (i * 13 + (i >> 10)) & 0xff);
const SHA = createHash("sha256").update(BIN).digest("hex");
const MANIFEST = 'version = 3\nexpires = "2030-01-01T00:00:00Z"\n';
let nginx: ReturnType<typeof Bun.spawn> | undefined;
let nginxErr = "";
let base = "";
let ours: BootstrapServer;

beforeAll(async () => {
  mkdirSync(join(root, "production"), { recursive: true });
  mkdirSync(join(root, "bin"));
  writeFileSync(join(root, "production/bootstrapper.toml"), MANIFEST);
  writeFileSync(join(root, "production/bootstrapper.toml.minisig"), "untrusted comment: x\n");
  writeFileSync(join(root, "bin/app-1.0"), BIN);
  writeFileSync(join(root, "bin/plain"), "plain");
  writeFileSync(join(root, "production/.secret"), "secret");
  writeFileSync(join(tmp, "outside"), "outside");
  symlinkSync(join(tmp, "outside"), join(root, "production/escape"));
  ours = startServer({ dir: root, hostname: "127.0.0.1", port: 0, log: () => {} });
  if (!NGINX) return;
  mkdirSync(join(root, "fleet"));
  // freePort binds, closes and hands the port on: another process may take
  // it first. nginx then fails to bind and exits: try again on a new port.
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = await freePort();
    const conf = join(tmp, "nginx.conf");
    writeFileSync(
      conf,
      nginxConfigFromDoc({ port, root, prefix: tmp, accessLog: join(tmp, "access.log") }),
    );
    const check = Bun.spawnSync([NGINX, "-t", "-q", "-c", conf, "-p", tmp, "-e", "stderr"]);
    if (check.exitCode !== 0) throw new Error(`nginx -t: ${check.stderr.toString()}`);
    nginxErr = "";
    const proc = Bun.spawn([NGINX, "-c", conf, "-p", tmp, "-e", "stderr"], {
      stdout: "ignore",
      stderr: "pipe",
    });
    nginx = proc;
    (async () => {
      for await (const c of proc.stderr) {
        nginxErr += new TextDecoder().decode(c);
      }
    })();
    base = `http://127.0.0.1:${port}/`;
    for (let i = 0; i < 100 && proc.exitCode === null; i++) {
      try {
        await fetch(base, { method: "HEAD" });
        return;
      } catch {
        await Bun.sleep(50);
      }
    }
    if (proc.exitCode === null) {
      proc.kill("SIGKILL");
      throw new Error(`nginx does not answer on port ${port}: ${nginxErr}`);
    }
    if (!nginxErr.includes("Address already in use")) break;
  }
  throw new Error(`nginx did not start: ${nginxErr}`);
});

afterAll(async () => {
  if (nginx) {
    nginx.kill("SIGTERM");
    await nginx.exited;
  }
  await ours?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

describe("nginx with the documented config", () => {
  test("unchanged manifest → 304 through conditionalGet (ETag and Last-Modified)", async () => {
    const url = `${base}production/bootstrapper.toml`;
    const first = await conditionalGet(url);
    if (first.status !== 200) throw new Error(`expected 200, got ${first.status}`);
    expect(new TextDecoder().decode(first.body)).toBe(MANIFEST);
    expect(first.etag).toMatch(/^"[0-9a-f]+-[0-9a-f]+"$/);
    const again = await conditionalGet(url, { etag: first.etag, lastModified: first.lastModified });
    expect(again.status).toBe(304);
    expect(again.stats).toMatchObject({ requests: 1, bytes: 0 });
    const byDate = await conditionalGet(url, { lastModified: first.lastModified });
    expect(byDate.status).toBe(304);
    const log = readFileSync(join(tmp, "access.log"), "utf8");
    expect(log).toMatch(/"GET \/production\/bootstrapper\.toml HTTP\/1\.1" 304 /);
  });

  test("a download resumes with Range + If-Range", async () => {
    const url = `${base}bin/app-1.0`;
    const etag = (await fetch(url, { method: "HEAD" })).headers.get("etag") as string;
    const dest = join(tmp, "app");
    writeFileSync(`${dest}.part`, BIN.slice(0, 100_000));
    writeFileSync(`${dest}.part.meta`, JSON.stringify({ sha256: SHA, etag }));
    const st = await download(url, dest, { expectSize: N, sha256: SHA, maxRetries: 0 });
    expect(new Uint8Array(readFileSync(dest))).toEqual(BIN);
    expect(st).toMatchObject({
      requests: 1,
      bytes: N - 100_000,
      resumedFrom: 100_000,
      restarts: 0,
    });
    // With a stale validator nginx sends the whole file and the client starts over.
    const dest2 = join(tmp, "app2");
    writeFileSync(`${dest2}.part`, BIN.slice(0, 100_000));
    writeFileSync(`${dest2}.part.meta`, JSON.stringify({ sha256: SHA, etag: '"stale"' }));
    const st2 = await download(url, dest2, { expectSize: N, sha256: SHA, maxRetries: 0 });
    expect(st2).toMatchObject({ requests: 1, bytes: N, restarts: 1 });
  });

  test("nginx and hero-init serve answer the same requests the same way", async () => {
    const etagOf = async (b: string) =>
      (await fetch(`${b}bin/app-1.0`, { method: "HEAD" })).headers.get("etag") as string;
    const cases: {
      path: string;
      method?: string;
      headers?: (etag: string) => Record<string, string>;
    }[] = [
      { path: "production/bootstrapper.toml" },
      { path: "production/bootstrapper.toml.minisig" },
      { path: "bin/app-1.0" },
      { path: "bin/plain" },
      { path: "bin/app-1.0", method: "HEAD" },
      { path: "bin/app-1.0", headers: () => ({ Range: "bytes=10-19" }) },
      { path: "bin/app-1.0", headers: () => ({ Range: "bytes=-5" }) },
      { path: "bin/app-1.0", headers: () => ({ Range: `bytes=${N}-` }) },
      { path: "bin/app-1.0", headers: () => ({ Range: "bytes=0-1,5-6" }) },
      { path: "bin/app-1.0", headers: (e) => ({ Range: "bytes=0-9", "If-Range": e }) },
      { path: "bin/app-1.0", headers: () => ({ Range: "bytes=0-9", "If-Range": '"stale"' }) },
      { path: "bin/app-1.0", headers: (e) => ({ "If-None-Match": e }) },
      { path: "bin/app-1.0", headers: (e) => ({ "If-None-Match": `"x", ${e}` }) },
      { path: "production/.secret" },
      { path: "production/%2esecret" },
      { path: "production" },
      { path: "production/" },
      { path: "" },
      { path: "missing" },
    ];
    const pick = [
      "content-type",
      "cache-control",
      "content-range",
      "content-length",
      "accept-ranges",
    ];
    for (const [i, c] of cases.entries()) {
      const answers = [];
      for (const b of [base, ours.url]) {
        const e = await etagOf(b);
        const r = await fetch(`${b}${c.path}`, {
          method: c.method ?? "GET",
          headers: c.headers?.(e),
          redirect: "manual",
        });
        const body = new Uint8Array(await r.arrayBuffer());
        const ok = r.status < 300;
        // A whole file despite a Range header: hero-init serve sends it chunked (serve.ts).
        const chunked = r.status === 200 && c.headers?.(e).Range !== undefined;
        const names = chunked ? pick.filter((h) => h !== "content-length") : pick;
        answers.push({
          case: i,
          status: r.status,
          headers: ok ? names.map((h) => `${h}: ${r.headers.get(h)}`) : [],
          sha: ok ? createHash("sha256").update(body).digest("hex") : "",
        });
      }
      expect(answers[0]).toEqual(answers[1] as (typeof answers)[0]);
    }
  });

  test("a symlink out of root is refused by both", async () => {
    for (const b of [base, ours.url]) {
      const r = await fetch(`${b}production/escape`);
      expect(r.status).toBe(404);
      expect(await r.text()).not.toContain("outside");
    }
  });
});

describe("the update engine against nginx", () => {
  test("unchanged → one 304, no artifact request; one of three changed → only it is fetched, only its service restarts, the old one is removed", async () => {
    const pub = join(root, "fleet");
    const machine = join(tmp, "machine");
    mkdirSync(join(machine, "etc"), { recursive: true });
    const key = generateKey();
    writeFileSync(join(machine, "etc/update.pub"), `${formatPublicKey(key).split("\n")[1]}\n`);
    const add = (name: string, v: string) => {
      mkdirSync(join(pub, "vm", name, v), { recursive: true });
      writeFileSync(join(pub, "vm", name, v, name), `${name} ${v}\n`);
      writeFileSync(join(pub, "vm", name, "meta.toml"), `services = ["${name}-svc"]\n`);
    };
    let version = 0;
    const publish = () => {
      const text = buildManifest(pub, {
        baseUrl: `${base}fleet/`,
        version: ++version,
        expires: new Date(Date.now() + 3600_000),
      });
      const data = new TextEncoder().encode(text);
      publishSigned(join(pub, "bootstrapper.toml"), data, key, "t");
    };
    for (const n of ["a", "b", "c"]) add(n, "1.0");
    publish();
    const restarted: string[][] = [];
    const run = () =>
      runUpdate(
        { manifestUrl: `${base}fleet/bootstrapper.toml`, role: "vm", machineId: "m" },
        {
          pkgs: join(machine, "usr/lib/hero/pkgs"),
          root: machine,
          stateDir: join(machine, "state"),
          keysFile: join(machine, "etc/update.pub"),
        },
        {
          restart: async (s) => void restarted.push(s),
          health: async () => [],
          log: () => {},
        },
      );
    expect((await run()).outcome).toBe("updated");
    const logFile = join(tmp, "access.log");
    const mark = () => readFileSync(logFile, "utf8").length;
    // nginx writes its access log line after the response: wait until the
    // lines we expect are there (5 s at most), not for a fixed time.
    const since = async (at: number, done: (lines: string[]) => boolean) => {
      const read = () => readFileSync(logFile, "utf8").slice(at).trim().split("\n").filter(Boolean);
      for (let i = 0; i < 100 && !done(read()); i++) await Bun.sleep(50);
      return read();
    };
    let at = mark();
    const unchanged = await run();
    expect(unchanged.outcome).toBe("unchanged");
    const poll = await since(at, (l) => l.length >= 1);
    expect(poll).toHaveLength(1);
    expect(poll[0]).toMatch(/"GET \/fleet\/bootstrapper\.toml HTTP\/1\.1" 304 /);

    add("b", "1.1");
    publish();
    restarted.length = 0;
    at = mark();
    const r = await run();
    expect(r.outcome).toBe("updated");
    const lines = await since(at, (l) => l.some((x) => x.includes("/fleet/vm/")));
    const artifacts = lines.filter((l) => l.includes("/fleet/vm/"));
    expect(artifacts).toHaveLength(1);
    expect(artifacts[0]).toContain("GET /fleet/vm/b/1.1/b ");
    expect(restarted).toEqual([["b-svc"]]);
    expect(existsSync(join(machine, "usr/lib/hero/pkgs/b/1.0"))).toBe(false);
    expect(readFileSync(join(machine, "usr/lib/hero/pkgs/b/current/b"), "utf8")).toBe("b 1.1\n");
  });
});
