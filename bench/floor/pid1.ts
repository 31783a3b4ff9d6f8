/**
 * The Bun floor of bench/boot.ts: the least any Bun program as PID 1 pays
 * before it answers `/health`. Compiled like hero-init (bench/boot-images.ts)
 * and booted in the hero image through the same pre-init, after a busybox
 * script that does what the busybox baseline's /init does (mounts, modules,
 * static network). It then only starts Bun, binds :9999, prints its READY
 * line and, like the baseline's inittab, starts 10 idle `sleep`s and the
 * memory probe. No supervision, config, control socket or UI: what it costs
 * is Bun's start under the same kernel and VM, not hero-init's.
 */
import { readFileSync } from "node:fs";

// `--exit`: start and end at once. The memory probe times a copy of this executable started
// twice once the VM is up: Bun's start when its code first runs, and again (bench/boot.ts).
if (process.argv.includes("--exit")) process.exit(0);

const uptime = () => readFileSync("/proc/uptime", "latin1").split(" ")[0];
const started = uptime();
Bun.serve({ hostname: "0.0.0.0", port: 9999, fetch: () => new Response("ok\n") });
console.log(`bun-floor boot: READY at ${uptime()} s uptime; started at ${started} s`);
for (let i = 0; i < 10; i++)
  Bun.spawn(["/bin/sleep", "100000"], { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
Bun.spawn(["/bin/sh", "/etc/floor-mem.sh"], { stdout: "inherit", stderr: "inherit" });
// PID 1 must not exit (the kernel would panic): the server keeps the event loop alive.
