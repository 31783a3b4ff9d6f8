/**
 * Status UI issue, in QEMU with a real headless Chromium (Debian's chromium
 * driven by playwright-core): log in with deploy_vm's one-time password, see
 * the services, restart one and watch its pid change, follow a log live,
 * open the debug terminal and run a command; in a second VM with the default
 * config the terminal is refused, a non-allowed source gets 403, and 10,000
 * fuzzed requests leave PID 1 serving. Screenshots go to .cache/screenshots
 * (the README's come from there).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { type Deployment, deployVm } from "../../host/deploy.ts";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { parseToml } from "../../lib/toml.ts";
import type { VmConfigInput } from "../../lib/vm-config.ts";
import { testVmToml } from "../vm/image.ts";
import { bootVm, READY, SERVICES_STARTED, type Vm } from "../vm/qemu.ts";

setDefaultTimeout(900_000);
const CHROMIUM = "/usr/bin/chromium";
// One folder per run: two runs on one machine never overwrite each other's screenshots.
const SHOTS = join(
  import.meta.dir,
  "../../.cache/screenshots",
  new Date().toISOString().replace(/[:.]/g, "-"),
);
const vm = parseToml(testVmToml(), "test vm.toml") as VmConfigInput;
const SERVICES = {
  ticker: 'exec: sh -c "i=0; while true; do echo tick $i; i=$((i+1)); sleep 1; done"\n',
  xss: "exec: sh -c \"echo '<script>alert(1)</script>'; exec sleep 100000\"\n",
  selfprobe:
    // From inside the guest, its own address 10.0.2.15 is not an allowed client.
    // It retries while the UI is not listening yet, then prints wget's answer on one line.
    'exec: sh -c "for i in $(seq 60); do r=$(wget -q -O - http://10.0.2.15:9999/health 2>&1); case $r in *onnection*refused*) sleep 1;; *) break;; esac; done; echo selfprobe=$r"\noneshot: true\nlog: stdout\n',
};

/** The few DOM calls the page predicates make (this program has no DOM lib; they run in Chromium). */
interface ElLike {
  textContent: string | null;
  querySelector(sel: string): ElLike | null;
}
interface XtermLike {
  buffer: {
    active: { length: number; getLine(i: number): { translateToString(): string } | undefined };
  };
}
/** In the page: `document`, typed. Functions passed to the page cannot call helpers, so each inlines this cast. */
type Win = { document: ElLike & { getElementById(id: string): ElLike | null } };

let kernel: Kernel;
let dir: string;
let browser: Browser;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-ui-"));
  mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});
afterAll(async () => {
  await browser?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function boot(d: Deployment, name: string): Promise<Vm> {
  const v = await bootVm({
    kernel: d.kernel,
    initrd: d.initrd,
    append: d.kernelCmdline,
    hostfwd: [9999],
    name,
  });
  await v.waitFor(READY, 240_000);
  // The pages and assertions below name services: all of them exist once this line is out.
  await v.waitFor(SERVICES_STARTED, 60_000);
  return v;
}

describe("status UI in a real browser", () => {
  test("log in, services, restart, live log, terminal", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, "ui-a"),
      // The browser reaches the VM through slirp, from 10.0.2.2: named, as a debugger node would be.
      vm: { ...vm, ui: { ...(vm.ui as object), terminal: true, terminal_allow: ["10.0.2.2"] } },
      services: SERVICES,
      kernel,
    });
    const password = readFileSync(d.uiPasswordFile as string, "utf8").trim();
    await using v = await boot(d, "ui-browser");
    const base = `http://127.0.0.1:${v.ports[9999]}`;
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const dialogs: string[] = [];
    page.on("dialog", (dlg) => {
      dialogs.push(dlg.message());
      dlg.accept();
    });

    // Not logged in: every page leads to the login form.
    await page.goto(`${base}/services`);
    expect(new URL(page.url()).pathname).toBe("/login");
    await page.screenshot({ path: join(SHOTS, "login.png") });
    await page.fill("input[name=password]", "wrong");
    await page.click("form.login button");
    expect(await page.textContent(".error")).toContain("Wrong password");
    await page.fill("input[name=password]", password);
    await page.click("form.login button");
    await page.waitForURL(`${base}/`);
    expect(await page.textContent("h1")).toBe("hero-test");
    await page.screenshot({ path: join(SHOTS, "overview.png"), fullPage: true });

    // Services table: ticker runs; restart it and watch the pid change.
    await page.goto(`${base}/services`);
    const row = page.locator('tr[data-service="ticker"]');
    await expect(row.locator("[data-state]").textContent()).resolves.toBe("Running");
    const pid1 = Number(await row.locator("[data-pid]").textContent());
    expect(pid1).toBeGreaterThan(1);
    await page.screenshot({ path: join(SHOTS, "services.png"), fullPage: true });
    await row.locator('button[data-action="restart"]').click();
    await page.waitForURL(`${base}/services`);
    await page.waitForFunction(
      (old) => {
        const r = (globalThis as unknown as Win).document.querySelector(
          'tr[data-service="ticker"]',
        );
        const pid = Number(r?.querySelector("[data-pid]")?.textContent);
        return (
          pid > 1 && pid !== old && r?.querySelector("[data-state]")?.textContent === "Running"
        );
      },
      pid1,
      { timeout: 30_000 },
    );

    // A service page follows its log live (SSE): a new tick appears after the page loaded.
    await page.goto(`${base}/services/ticker`);
    await page.waitForFunction(
      () =>
        (globalThis as unknown as Win).document.getElementById("log-status")?.textContent ===
        "live",
    );
    const ticks = async () => (await page.textContent("#log"))?.match(/tick \d+/g)?.length ?? 0;
    const before = await ticks();
    await page.waitForFunction(
      (n) =>
        ((globalThis as unknown as Win).document
          .getElementById("log")
          ?.textContent?.match(/tick \d+/g)?.length ?? 0) > n,
      before,
      { timeout: 20_000 },
    );
    await page.screenshot({ path: join(SHOTS, "service.png"), fullPage: true });

    // Log text is text: the <script> a service printed is shown, never run.
    await page.goto(`${base}/services/xss`);
    await page.waitForFunction(() =>
      (globalThis as unknown as Win).document
        .getElementById("log")
        ?.textContent?.includes("<script>"),
    );
    expect(dialogs).toEqual([]);
    expect(await page.locator("#log script").count()).toBe(0);

    // The debug terminal (enabled in this VM): run a command, read its output.
    await page.goto(`${base}/terminal`);
    await page.waitForFunction(
      () =>
        (globalThis as unknown as Win).document.getElementById("term-status")?.textContent ===
        "connected",
      undefined,
      { timeout: 20_000 },
    );
    await page.keyboard.type("echo hero-$((6*7))\n");
    const screen = () =>
      page.evaluate(() => {
        const t = (globalThis as unknown as { heroTerminal: XtermLike }).heroTerminal;
        const lines: string[] = [];
        for (let i = 0; i < t.buffer.active.length; i++)
          lines.push(t.buffer.active.getLine(i)?.translateToString() ?? "");
        return lines.join("\n");
      });
    const deadline = Date.now() + 20_000;
    while (!/^hero-42\s*$/m.test(await screen()) && Date.now() < deadline) await Bun.sleep(200);
    expect(await screen()).toMatch(/^hero-42\s*$/m);
    await page.screenshot({ path: join(SHOTS, "terminal.png") });
    await page.goto(`${base}/updates`);
    await page.screenshot({ path: join(SHOTS, "updates.png"), fullPage: true });

    // The same refusals from a script: no session, missing CSRF.
    expect((await fetch(`${base}/api/v1/services`)).status).toBe(401);
    const cookie = (await page.context().cookies()).find((c) => c.name === "hero_session");
    const noCsrf = await fetch(`${base}/api/v1/services/ticker/stop`, {
      method: "POST",
      headers: { cookie: `hero_session=${cookie?.value}` },
    });
    expect(noCsrf.status).toBe(403);
    expect(v.console()).toMatch(/terminal: opened for 10\.0\.2\.2/);
    await page.close();
    await v.powerdown();
    expect(await v.waitExit(90_000)).toBe(0);
    expect(v.console()).toMatch(/terminal: closed for 10\.0\.2\.2/);
  });

  test("the real UI source: memory and CPU from the services' cgroups, the guest's MemTotal, stop/start/kill", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, "ui-c"),
      vm,
      services: {
        // Holds ~30 MB in a shell variable; burns CPU; prints the guest's own MemTotal.
        hog: `exec: sh -c "x=$(head -c 30000000 /dev/zero | tr '\\\\0' a); echo HOG-READY; while :; do sleep 1000; done"\nlog: stdout\n`,
        spin: 'exec: sh -c "while :; do :; done"\n',
        facts: 'exec: sh -c "grep MemTotal /proc/meminfo"\noneshot: true\nlog: stdout\n',
        idle: "exec: sleep 100000\n",
      },
      kernel,
    });
    const password = readFileSync(d.uiPasswordFile as string, "utf8").trim();
    await using v = await boot(d, "ui-source");
    const base = `http://127.0.0.1:${v.ports[9999]}`;
    const login = await fetch(`${base}/api/v1/login`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ password }),
    });
    expect(login.status).toBe(200);
    const { csrf } = (await login.json()) as { csrf: string };
    const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0] as string;
    const get = async <T>(path: string) =>
      (await (await fetch(`${base}${path}`, { headers: { cookie } })).json()) as T;
    const post = (path: string, body?: object) =>
      fetch(`${base}${path}`, {
        method: "POST",
        headers: { cookie, "x-csrf-token": csrf, "content-type": "application/json" },
        body: body ? JSON.stringify(body) : undefined,
      });
    type Row = { name: string; state: string; pid: number; memoryBytes: number; cpuUsec: number };
    const row = async (name: string) =>
      (await get<Row[]>("/api/v1/services")).find((r) => r.name === name) as Row;
    /** Polls the service's row until `ok` holds (30 s at most). */
    const until = async (name: string, ok: (r: Row) => boolean): Promise<Row> => {
      for (let i = 0; i < 150; i++) {
        const r = await row(name);
        if (ok(r)) return r;
        await Bun.sleep(200);
      }
      throw new Error(`${name}: ${JSON.stringify(await row(name))}`);
    };

    await v.waitFor("HOG-READY", 120_000);
    const memTotalKb = Number(
      /MemTotal:\s+(\d+) kB/.exec(await v.waitFor(/MemTotal:\s+\d+ kB/))?.[1],
    );
    const ov = await get<{ memory: { totalBytes: number; availableBytes: number } }>(
      "/api/v1/overview",
    );
    expect(ov.memory.totalBytes).toBe(memTotalKb * 1024);
    expect(ov.memory.availableBytes).toBeLessThan(ov.memory.totalBytes);
    // memory.current of hog's cgroup holds its 30 MB; idle's is far smaller.
    const hog = await row("hog");
    expect(hog.memoryBytes).toBeGreaterThan(30_000_000);
    expect(hog.memoryBytes).toBeLessThan(ov.memory.totalBytes);
    expect((await row("idle")).memoryBytes).toBeLessThan(10_000_000);
    // cpu.stat usage_usec of spin grows while it spins.
    const cpu0 = (await row("spin")).cpuUsec;
    await until("spin", (r) => r.cpuUsec - cpu0 >= 200_000);

    // stop / start / kill through the same source.
    const idle0 = await row("idle");
    expect((await post("/api/v1/services/idle/stop")).status).toBe(200);
    await until("idle", (r) => r.state !== "Running" && !r.pid);
    expect((await post("/api/v1/services/idle/start")).status).toBe(200);
    const idle1 = await until("idle", (r) => r.state === "Running" && r.pid > 1);
    expect(idle1.pid).not.toBe(idle0.pid);
    const spin0 = await row("spin");
    expect((await post("/api/v1/services/spin/kill", { signal: "SIGKILL" })).status).toBe(200);
    // Killed, and restarted by the supervisor (a killed service's target stays Up).
    await v.waitFor("spin: Running → Error (killed by SIGKILL)", 30_000);
    await until("spin", (r) => r.state === "Running" && r.pid > 1 && r.pid !== spin0.pid);
    await v.powerdown();
    expect(await v.waitExit(90_000)).toBe(0);
  });

  test("default config: terminal refused, non-allowed source refused, 10,000 fuzzed requests", async () => {
    const d = await deployVm({
      template: "minimal",
      format: "initramfs",
      out: join(dir, "ui-b"),
      vm,
      services: SERVICES,
      kernel,
    });
    const password = readFileSync(d.uiPasswordFile as string, "utf8").trim();
    await using v = await boot(d, "ui-default");
    const base = `http://127.0.0.1:${v.ports[9999]}`;
    const page = await browser.newPage();
    await page.goto(`${base}/login`);
    await page.fill("input[name=password]", password);
    await page.click("form.login button");
    await page.waitForURL(`${base}/`);
    expect(await page.locator('a[href="/terminal"]').count()).toBe(0);
    const res = await page.goto(`${base}/terminal`);
    expect(res?.status()).toBe(404);
    expect(await page.textContent("main")).toContain("disabled");
    await page.close();

    // busybox wget: "server returned error: HTTP/1.1 403 Forbidden"
    expect(await v.waitFor(/selfprobe=.*/, 90_000)).toMatch(/selfprobe=.*HTTP\/1\.1 403/);

    // 10,000 random requests, 16 at a time; PID 1 must keep serving.
    let seed = 7;
    const rnd = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const paths = [
      "/",
      "/services",
      "/services/ticker",
      "/api/v1/services",
      "/api/v1/services/ticker/restart",
      "/login",
      "/api/v1/login",
      "/terminal/ws",
      "/api/v1/logs",
      "/assets/app.js",
      "/%ff%fe",
      `/${"a".repeat(5000)}`,
      "/services/../../etc/passwd",
      "/api/v1/services/%3Cscript%3E",
    ];
    const methods = ["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"];
    const statuses = new Map<number, number>();
    let errors = 0;
    const one = async () => {
      const method = methods[rnd(methods.length)] as string;
      const path = paths[rnd(paths.length)] as string;
      const body =
        method === "GET" || method === "HEAD"
          ? undefined
          : rnd(3) === 0
            ? JSON.stringify({ password: "x".repeat(rnd(2000)) })
            : crypto.getRandomValues(new Uint8Array(rnd(4096)));
      try {
        const r = await fetch(`${base}${path}?q=${rnd(1e6)}`, {
          method,
          body,
          headers: {
            cookie: rnd(2) ? `hero_session=${"f".repeat(64)}` : "x=y",
            "content-type": ["application/json", "application/x-www-form-urlencoded", "text/plain"][
              rnd(3)
            ] as string,
            accept: rnd(2) ? "text/event-stream" : "*/*",
          },
          signal: AbortSignal.timeout(10_000),
        });
        await r.arrayBuffer().catch(() => {});
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      } catch {
        errors++;
      }
    };
    const N = 10_000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next++ < N) await one();
      }),
    );
    const fivexx = [...statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0);
    console.log("fuzz statuses", Object.fromEntries(statuses), "client errors", errors);
    expect(fivexx).toBe(0);
    expect(errors).toBeLessThan(N / 100);
    const health = await fetch(`${base}/health`);
    expect(health.status).toBe(200);
    expect(v.console()).not.toMatch(/Kernel panic|uncaught exception/);
    await v.powerdown();
    expect(await v.waitExit(90_000)).toBe(0);
  });
});
