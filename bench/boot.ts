/**
 * Boot benchmark: QEMU start → READY line and → first HTTP 200 from /health
 * on :9999, hero-init as PID 1 vs a baseline VM of the same kind (same
 * kernel, 1024 MB, 1 vCPU, virtio-net, virtio_pci + virtio_net loaded,
 * uncompressed initramfs written with writeNewc) whose /init is a busybox
 * script (mounts, insmod, static network) that execs busybox init, which
 * starts busybox httpd on :9999 from its sysinit script. RUNS boots of each,
 * interleaved (the order alternates per round), in one run.
 *
 * Also, in the guest: hero-init's READY line (READY at X; started at Y;
 * pre-init exec'ed it at Z), the kernel's "Run /init as init process" timestamp (dmesg)
 * for both images, and the idle RSS/PSS of PID 1 read from
 * /proc/1/smaps_rollup 5 s after READY by a oneshot service (hero-init) or
 * an inittab `once` script (busybox init).
 *
 * Run: node_modules/.bin/bun bench/boot.ts   (BENCH_RUNS=N to change 5)
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type CpioEntry, writeNewc } from "../host/cpio/newc.ts";
import { ensureKernel, moduleClosure } from "../host/kernel.ts";
import { buildImage, testVmToml } from "../test/vm/image.ts";
import { bootVm } from "../test/vm/qemu.ts";
import { median, out, parseRollup, printRatios, ratio } from "./lib.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const MEM_MB = 1024;
const MODULES = ["virtio_pci", "virtio_net"];
const kernel = await ensureKernel();
const dir = mkdtempSync(join(tmpdir(), "hero-bench-boot-"));
const enc = new TextEncoder();
const text = (path: string, s: string, mode = 0o644): CpioEntry => ({
  type: "file",
  path,
  mode,
  data: enc.encode(s),
});
// Printed after the measurements (sleep 6), so it does not compete with them.
// (No ": " in it: the service file is YAML.)
const DMESG = "dmesg | grep 'Run /init as init process'";

/** The baseline: busybox /init script → busybox init → busybox httpd. */
async function baselineImage(): Promise<string> {
  const mods = await moduleClosure(kernel, MODULES);
  const modDir = `lib/modules/${kernel.version}`;
  const dirs = new Set(["bin", "sbin", "dev", "proc", "sys", "etc", "tmp", "www"]);
  for (const m of mods) {
    const parts = `${modDir}/${m}`.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const e: CpioEntry[] = [...dirs].sort().map((path) => ({ type: "dir", path, mode: 0o755 }));
  e.push({ type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  e.push({ type: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 });
  e.push({
    type: "file",
    path: "bin/busybox",
    mode: 0o755,
    data: new Uint8Array(await Bun.file("/bin/busybox").arrayBuffer()),
  });
  const applets = Bun.spawnSync(["/bin/busybox", "--list"]).stdout.toString().split("\n");
  for (const a of applets.filter((x) => x && x !== "busybox"))
    e.push({ type: "symlink", path: `bin/${a}`, target: "busybox" });
  e.push({ type: "symlink", path: "sbin/init", target: "../bin/busybox" });
  for (const m of mods)
    e.push({
      type: "file",
      path: `${modDir}/${m}`,
      mode: 0o644,
      data: new Uint8Array(await Bun.file(join(kernel.modulesDir, m)).arrayBuffer()),
    });
  e.push(text("www/health", "ok\n"));
  const insmods = mods.map((m) => `insmod /${modDir}/${m}`).join("\n");
  e.push(
    text(
      "init",
      `#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
echo "baseline: /init at $(cut -d' ' -f1 /proc/uptime) s uptime"
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
${insmods}
while [ ! -e /sys/class/net/eth0 ]; do usleep 10000; done
ip link set lo up
ip addr add 10.0.2.15/24 dev eth0
ip link set eth0 up
ip route add default via 10.0.2.2
exec /sbin/init
`,
      0o755,
    ),
  );
  e.push(text("etc/inittab", "::sysinit:/etc/rcS\n::once:/etc/mem.sh\n"));
  e.push(
    text(
      "etc/rcS",
      `#!/bin/sh
httpd -p 9999 -h /www
echo "busybox boot: READY at $(cut -d' ' -f1 /proc/uptime) s uptime"
`,
      0o755,
    ),
  );
  e.push(
    text(
      "etc/mem.sh",
      `#!/bin/sh
sleep 5; grep -E '^(Rss|Pss):' /proc/1/smaps_rollup | sed 's/^/busybox mem: /'
sleep 1; ${DMESG}
`,
      0o755,
    ),
  );
  const path = join(dir, "baseline.cpio");
  await Bun.write(path, writeNewc(e));
  return path;
}

/** hero-init as PID 1 (via the pre-init), busybox for the oneshot services. */
async function heroImage(): Promise<string> {
  return buildImage(join(dir, "hero.cpio"), {
    kernel,
    modules: MODULES,
    busybox: true,
    vmToml: testVmToml(),
    extra: [
      { type: "dir", path: "etc/zinit", mode: 0o755 },
      text(
        "etc/zinit/mem.yaml",
        `exec: sh -c "sleep 5; grep -E '^(Rss|Pss):' /proc/1/smaps_rollup"\nlog: stdout\noneshot: true\n`,
      ),
      text("etc/zinit/kinfo.yaml", `exec: sh -c "sleep 6; ${DMESG}"\nlog: stdout\noneshot: true\n`),
    ],
  });
}

interface Sample {
  /** QEMU start → READY on the console, s. */
  ready: number;
  /** QEMU start → first HTTP 200 from /health, s. */
  http: number;
  console: string;
}

/**
 * One boot: polls the console for READY and starts a probe of /health every
 * 25 ms without waiting for the previous ones (before the guest's network is
 * up, a connection to the forward hangs inside QEMU's slirp, so probes must
 * overlap; each gives up after 1 s).
 */
async function once(initrd: string, name: string, ready: RegExp): Promise<Sample> {
  const t0 = performance.now();
  await using vm = await bootVm({ kernel, initrd, memMB: MEM_MB, hostfwd: [9999], name });
  const url = `http://127.0.0.1:${vm.ports[9999]}/health`;
  let readyAt = 0;
  let httpAt = 0;
  const probe = async () => {
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) });
      if (r.status === 200 && !httpAt) httpAt = performance.now();
      await r.arrayBuffer();
    } catch {
      // not listening yet
    }
  };
  const deadline = Date.now() + 180_000;
  while (!readyAt || !httpAt) {
    if (Date.now() > deadline) throw new Error(`${name}: no READY/HTTP 200 within 180 s`);
    if (!readyAt && ready.test(vm.console())) readyAt = performance.now();
    if (!httpAt) void probe();
    await Bun.sleep(25);
  }
  await vm.waitFor(/\] Run \/init as init process/, 60_000).catch(() => "");
  return { ready: (readyAt - t0) / 1000, http: (httpAt - t0) / 1000, console: vm.console() };
}

const num = (re: RegExp, s: string) => Number(re.exec(s)?.[1] ?? Number.NaN);
const runInit = (s: Sample) => num(/\[\s*([\d.]+)\] Run \/init as init process/, s.console);

try {
  const hero = await heroImage();
  const base = await baselineImage();
  const h: Sample[] = [];
  const b: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    // A failed boot is reported on stderr and left out; the counts below show it.
    const run = (initrd: string, name: string, re: RegExp, into: Sample[]) => () =>
      once(initrd, name, re).then(
        (s) => void into.push(s),
        (e) => console.error(`# ${name} failed: ${(e as Error).message.slice(0, 2000)}`),
      );
    const heroRun = run(hero, `bench-hero-${i}`, /hero-init boot: READY/, h);
    const baseRun = run(base, `bench-busybox-${i}`, /busybox boot: READY/, b);
    if (i % 2 === 0) {
      await heroRun();
      await baseRun();
    } else {
      await baseRun();
      await heroRun();
    }
  }
  const med = (xs: Sample[], k: "ready" | "http") => median(xs.map((x) => x[k]));
  const min = (xs: Sample[], k: "ready" | "http") => Math.min(...xs.map((x) => x[k]));
  out("runs", RUNS);
  out("runs_ok_hero", h.length);
  out("runs_ok_busybox", b.length);
  out("initrd_hero_mb", Bun.file(hero).size / 1e6);
  out("initrd_busybox_mb", Bun.file(base).size / 1e6);
  for (const [label, xs] of [
    ["busybox", b],
    ["hero", h],
  ] as const) {
    out(`${label}_qemu_to_ready_median_s`, med(xs, "ready"));
    out(`${label}_qemu_to_ready_min_s`, min(xs, "ready"));
    out(`${label}_qemu_to_http200_median_s`, med(xs, "http"));
    out(`${label}_qemu_to_http200_min_s`, min(xs, "http"));
    out(`${label}_qemu_to_http200_each_s`, xs.map((x) => x.http.toFixed(2)).join(" "));
  }

  // In the guest, hero-init's READY line: READY at X; hero-init (its JavaScript) started at Y;
  // "pre-init exec'ed it at" Z (CLOCK_BOOTTIME stamped by the pre-init just before execve), so
  // Y - Z is Bun's runtime start. The kernel's "Run /init as init process" stamp R (from dmesg,
  // read by a oneshot after the measurements) is the exec of the pre-init itself.
  const line =
    /READY at ([\d.]+) s uptime; hero-init started at ([\d.]+) s, pre-init exec'ed it at ([\d.]+) s/;
  const hx = h.map((s) => ({ m: line.exec(s.console), run: runInit(s) }));
  const X = (i: number) => Number(hx[i]?.m?.[1]);
  const Y = (i: number) => Number(hx[i]?.m?.[2]);
  const Z = (i: number) => Number(hx[i]?.m?.[3]);
  const R = (i: number) => hx[i]?.run ?? Number.NaN;
  const each = (f: (i: number) => number) => h.map((_, i) => f(i)).filter(Number.isFinite);
  out("hero_guest_ready_uptime_median_s", median(each(X)));
  out("hero_guest_preinit_exec_uptime_median_s", median(each(Z)));
  out("hero_guest_bun_start_median_s", median(each((i) => Y(i) - Z(i))));
  out("hero_guest_ready_minus_hero_exec_median_s", median(each((i) => X(i) - Z(i))));
  out("hero_guest_kernel_run_init_uptime_median_s", median(each(R)));
  out("hero_guest_run_init_to_js_start_median_s", median(each((i) => Y(i) - R(i))));
  out("hero_guest_js_start_to_ready_median_s", median(each((i) => X(i) - Y(i))));
  // Boot step durations hero-init logs ("step modules done in N ms").
  const stepMs = (s: Sample) => num(/step modules done in (\d+) ms/, s.console);
  out("hero_guest_step_modules_median_ms", median(h.map(stepMs).filter(Number.isFinite)));
  out("hero_guest_run_init_to_ready_median_s", median(each((i) => X(i) - R(i))));
  const bReady = (s: Sample) => num(/busybox boot: READY at ([\d.]+)/, s.console);
  out("busybox_guest_ready_uptime_median_s", median(b.map(bReady).filter(Number.isFinite)));
  out(
    "busybox_guest_kernel_run_init_uptime_median_s",
    median(b.map(runInit).filter(Number.isFinite)),
  );
  out(
    "busybox_guest_run_init_to_ready_median_s",
    median(b.map((s) => bReady(s) - runInit(s)).filter(Number.isFinite)),
  );

  // Idle PID 1 memory, median over the runs.
  const mem = (xs: Sample[], prefix: string) =>
    xs.map((s) =>
      parseRollup(
        (s.console.match(new RegExp(`${prefix} mem: \\w+:\\s+\\d+`, "g")) ?? []).join("\n"),
      ),
    );
  const hm = mem(h, "hero-init");
  const bm = mem(b, "busybox");
  const m = (xs: { rssKb: number; pssKb: number }[], k: "rssKb" | "pssKb") =>
    median(xs.map((x) => x[k]).filter(Number.isFinite));
  out("hero_pid1_idle_rss_kb", m(hm, "rssKb"));
  out("hero_pid1_idle_pss_kb", m(hm, "pssKb"));
  out("busybox_pid1_idle_rss_kb", m(bm, "rssKb"));
  out("busybox_pid1_idle_pss_kb", m(bm, "pssKb"));

  ratio(
    "ratio_guest_run_init_to_ready_median_hero_vs_busybox",
    median(each((i) => X(i) - R(i))) /
      median(b.map((s) => bReady(s) - runInit(s)).filter(Number.isFinite)),
  );
  ratio("ratio_ready_median_hero_vs_busybox", med(h, "ready") / med(b, "ready"));
  ratio("ratio_http200_min_hero_vs_busybox", min(h, "http") / min(b, "http"));
  ratio("ratio_http200_median_hero_vs_busybox", med(h, "http") / med(b, "http"));
  printRatios();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
