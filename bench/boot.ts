/**
 * Boot benchmark: QEMU start → READY and → first HTTP 200 on :9999, for
 * hero-init as PID 1 vs busybox init + busybox httpd in the same kind of VM
 * (same kernel, memory, NIC, modules, uncompressed initramfs), 5 runs each,
 * interleaved, in one run. Also hero-init's in-guest times (from its READY
 * line) and the RSS/PSS of PID 1 when idle, for both.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CpioEntry } from "../host-injector/cpio/newc.ts";
import { writeNewc } from "../host-injector/cpio/newc.ts";
import { ensureKernel, moduleClosure } from "../host-injector/kernel.ts";
import { buildImage, testVmToml } from "../test/vm/image.ts";
import { bootVm } from "../test/vm/qemu.ts";
import { median, out } from "./lib.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const kernel = await ensureKernel();
const dir = mkdtempSync(join(tmpdir(), "hero-bench-boot-"));
const enc = new TextEncoder();
const MEM = `sleep 5; grep -E '^(Rss|Pss):' /proc/1/smaps_rollup | tr -s ' ' | tr '\\n' ' '`;

async function baselineImage(): Promise<string> {
  const mods = await moduleClosure(kernel, ["virtio_pci", "virtio_net"]);
  const modDir = `lib/modules/${kernel.version}`;
  const e: CpioEntry[] = [];
  const dirs = new Set<string>(["bin", "dev", "proc", "sys", "www", "lib", "lib/modules", modDir]);
  for (const m of mods) {
    const parts = `${modDir}/${m}`.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  for (const d of [...dirs].sort()) e.push({ type: "dir", path: d, mode: 0o755 });
  e.push({ type: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  e.push({
    type: "file",
    path: "bin/busybox",
    mode: 0o755,
    data: new Uint8Array(await Bun.file("/bin/busybox").arrayBuffer()),
  });
  for (const m of mods)
    e.push({
      type: "file",
      path: `${modDir}/${m}`,
      mode: 0o644,
      data: new Uint8Array(await Bun.file(join(kernel.modulesDir, m)).arrayBuffer()),
    });
  e.push({ type: "file", path: "www/health", mode: 0o644, data: enc.encode("ok\n") });
  const insmods = mods.map((m) => `/bin/busybox insmod /${modDir}/${m}`).join("\n");
  const init = `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs dev /dev
${insmods}
while [ ! -e /sys/class/net/eth0 ]; do usleep 20000; done
ip link set lo up; ip addr add 10.0.2.15/24 dev eth0; ip link set eth0 up; ip route add default via 10.0.2.2
httpd -p 9999 -h /www
echo "READY at $(cut -d' ' -f1 /proc/uptime)"
(${MEM.replace("/proc/1/", "/proc/1/")}; echo) &
exec /bin/busybox sleep 100000
`;
  e.push({ type: "file", path: "init", mode: 0o755, data: enc.encode(init) });
  const path = join(dir, "baseline.cpio");
  await Bun.write(path, writeNewc(e));
  return path;
}

async function heroImage(): Promise<string> {
  return buildImage(join(dir, "hero.cpio"), {
    kernel,
    busybox: true,
    vmToml: testVmToml(),
    extra: [
      { type: "dir", path: "etc/zinit", mode: 0o755 },
      {
        type: "file",
        path: "etc/zinit/mem.yaml",
        mode: 0o644,
        data: enc.encode(`exec: sh -c "${MEM.replace(/"/g, '\\"')}"\noneshot: true\nlog: stdout\n`),
      },
    ],
  });
}

interface Sample {
  ready: number;
  http: number;
  console: string;
}

async function once(initrd: string, name: string, ready: RegExp, path: string): Promise<Sample> {
  const t0 = performance.now();
  await using vm = await bootVm({ kernel, initrd, hostfwd: [9999], name });
  const port = vm.ports[9999] as number;
  let readyAt = 0;
  let httpAt = 0;
  for (let i = 0; i < 3000 && (!readyAt || !httpAt); i++) {
    if (!readyAt && ready.test(vm.console())) readyAt = performance.now();
    if (!httpAt) {
      try {
        const r = await fetch(`http://127.0.0.1:${port}${path}`, {
          signal: AbortSignal.timeout(500),
        });
        if (r.status === 200) httpAt = performance.now();
      } catch {
        // not up yet
      }
    }
    await Bun.sleep(20);
  }
  await vm.waitFor(/Pss:\s*\d+/, 30_000).catch(() => "");
  return { ready: (readyAt - t0) / 1000, http: (httpAt - t0) / 1000, console: vm.console() };
}

try {
  const [hero, base] = [await heroImage(), await baselineImage()];
  const h: Sample[] = [];
  const b: Sample[] = [];
  for (let i = 0; i < RUNS; i++) {
    h.push(await once(hero, `bench-hero-${i}`, /hero-init boot: READY/, "/health"));
    b.push(await once(base, `bench-busybox-${i}`, /READY at/, "/health"));
  }
  const med = (xs: Sample[], k: "ready" | "http") => median(xs.map((x) => x[k]));
  out("runs", RUNS);
  out("busybox_qemu_to_ready_median_s", med(b, "ready"));
  out("busybox_qemu_to_http200_median_s", med(b, "http"));
  out("hero_qemu_to_ready_median_s", med(h, "ready"));
  out("hero_qemu_to_http200_median_s", med(h, "http"));
  out("hero_qemu_to_ready_min_s", Math.min(...h.map((x) => x.ready)));
  const inGuest = h
    .map((x) =>
      /READY at ([\d.]+) s uptime; hero-init started at ([\d.]+) s, PID 1 exec'ed at ([\d.]+) s/.exec(
        x.console,
      ),
    )
    .filter((m) => m !== null);
  out(
    "hero_guest_pid1_exec_to_ready_median_s",
    median(inGuest.map((m) => Number(m[1]) - Number(m[3]))),
  );
  out(
    "hero_guest_bun_start_to_ready_median_s",
    median(inGuest.map((m) => Number(m[1]) - Number(m[2]))),
  );
  out(
    "busybox_guest_ready_uptime_median_s",
    median(b.map((x) => Number(/READY at ([\d.]+)/.exec(x.console)?.[1]))),
  );
  const mem = (x: Sample) => /Rss:\s*(\d+) kB\s*Pss:\s*(\d+)/.exec(x.console);
  const hm = mem(h[0] as Sample);
  const bm = mem(b[0] as Sample);
  out("hero_pid1_idle_rss_kb", hm ? Number(hm[1]) : "n/a");
  out("hero_pid1_idle_pss_kb", hm ? Number(hm[2]) : "n/a");
  out("busybox_pid1_idle_rss_kb", bm ? Number(bm[1]) : "n/a");
  out("busybox_pid1_idle_pss_kb", bm ? Number(bm[2]) : "n/a");
  out("ratio_http200_hero_vs_busybox", med(h, "http") / med(b, "http"));
} finally {
  rmSync(dir, { recursive: true, force: true });
}
