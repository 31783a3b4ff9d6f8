/**
 * `npm run demo`: the main job end to end. Makes a local manifest with one
 * `[vm]` binary, deploys the `minimal` template with it (deploy_vm), boots the
 * VM with `hero-init vm run` (QEMU, TCG), waits for READY, prints where the
 * UI answers, and powers the VM off on Ctrl-C (ACPI power button; a second
 * Ctrl-C stops it at once). `vm run` runs in a session of its own and gets
 * each Ctrl-C from here exactly once: were it in the terminal's process
 * group too, one keypress would reach it twice and count as the second.
 */
import { createHash } from "node:crypto";
import { mkdirSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { freePort } from "../test/vm/qemu.ts";

const ROOT = join(import.meta.dir, "..");
const HERO = join(ROOT, "dist/hero-init");
const work = join(ROOT, ".cache/demo");
mkdirSync(join(work, "services"), { recursive: true });

// A tiny "fleet binary" and the manifest that pins it by sha256.
const tool = new TextEncoder().encode(
  '#!/bin/sh\nwhile true; do echo "hello-fleet $(date): the VM runs the manifest\'s binary"; sleep 10; done\n',
);
writeFileSync(join(work, "hello-fleet"), tool);
const sha = createHash("sha256").update(tool).digest("hex");
writeFileSync(
  join(work, "bootstrapper.toml"),
  `version = 1\n\n[[vm.binaries]]\nname = "hello-fleet"\nversion = "1.0.0"\nurl = "file://${work}/hello-fleet"\nsha256 = "${sha}"\nsize = ${tool.length}\n`,
);
writeFileSync(
  join(work, "vm.toml"),
  `hostname = "demo-vm"\n\n[network]\ndns = ["10.0.2.3"]\n\n[[network.interfaces]]\nname = "eth0"\naddress = "10.0.2.15/24"\ngateway = "10.0.2.2"\n\n[ui]\nlisten = ["0.0.0.0"]\nallow = ["10.0.2.2/32"]\n`,
);

writeFileSync(join(work, "services/hello-fleet.yaml"), "exec: hello-fleet\nlog: stdout\n");

function run(args: string[]): void {
  const p = Bun.spawnSync([HERO, ...args], { stdout: "inherit", stderr: "inherit" });
  if (p.exitCode !== 0) process.exit(p.exitCode ?? 1);
}

console.log(
  "demo: deploy_vm — minimal template + manifest [vm] binary + VM config (first run fetches the Debian kernel)…",
);
run([
  "deploy",
  "--template",
  "minimal",
  "--format",
  "initramfs",
  "--out",
  join(work, "vm"),
  "--manifest",
  join(work, "bootstrapper.toml"),
  "--vm-config",
  join(work, "vm.toml"),
  "--services",
  join(work, "services"),
]);
const port = await freePort();
const log = join(work, "console.log");
console.log(`demo: booting with hero-init as PID 1 (QEMU, TCG: ~10 s); console → ${log}`);
const vm = Bun.spawn([HERO, "vm", "run", join(work, "vm"), "--port", String(port)], {
  stdout: openSync(log, "w"),
  stderr: "inherit",
  stdin: "ignore",
  detached: true,
});
let interrupts = 0;
process.on("SIGINT", () => {
  console.log(
    ++interrupts === 1
      ? "\ndemo: powering the VM off (ACPI power button; Ctrl-C again stops it at once)…"
      : "\ndemo: stopping the VM now…",
  );
  vm.kill("SIGINT");
});
for (const sig of ["SIGTERM", "SIGHUP"] as const) process.on(sig, () => vm.kill("SIGTERM"));
for (let i = 0; i < 1800 && vm.exitCode === null; i++) {
  if (readFileSync(log, "utf8").includes("hero-init boot: READY")) break;
  await Bun.sleep(100);
}
if (vm.exitCode !== null) {
  console.error(`demo: the VM stopped before READY; see ${log}`);
  process.exit(1);
}
const url = `http://127.0.0.1:${port}/`;
const health = await fetch(`${url}health`).then(
  (r) => r.text(),
  (e) => String(e),
);
console.log(`demo: READY. UI address: ${url}  (health: ${health})`);
console.log(`demo: UI password (one-time, admin): in ${join(work, "vm", "ui-password")}`);
console.log("demo: press Ctrl-C to power the VM off.");
if (process.env.DEMO_EXIT_AFTER_READY) vm.kill("SIGINT");
const code = await vm.exited;
console.log(
  code === 0
    ? "demo: the VM powered off."
    : `demo: the VM was stopped (vm run exit ${code}: 124 power-down timed out, 130 second Ctrl-C).`,
);
process.exit(code);
