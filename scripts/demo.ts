/**
 * `npm run demo`: build, put hero-init into a minimal initramfs (busybox +
 * a demo service), boot it in QEMU (TCG), print where the UI/health endpoint
 * answers, and power the VM off cleanly on Ctrl-C.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel } from "../host-injector/kernel.ts";
import { buildImage, testVmToml } from "../test/vm/image.ts";
import { bootVm } from "../test/vm/qemu.ts";

const enc = new TextEncoder();
const dir = mkdtempSync(join(tmpdir(), "hero-demo-"));
console.log("demo: fetching the Debian kernel (cached after the first run)…");
const kernel = await ensureKernel();
const initrd = await buildImage(join(dir, "demo.cpio"), {
  kernel,
  busybox: true,
  vmToml: testVmToml(),
  extra: [
    { type: "dir", path: "etc/zinit", mode: 0o755 },
    {
      type: "file",
      path: "etc/zinit/hello.yaml",
      mode: 0o644,
      data: enc.encode(
        'exec: sh -c "while true; do echo hello from the demo service; sleep 5; done"\n',
      ),
    },
  ],
});
console.log(`demo: booting ${kernel.version} with hero-init as PID 1 (QEMU, TCG: ~10 s)…`);
const vm = await bootVm({ kernel, initrd, hostfwd: [9999], name: "demo" });
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  console.log("\ndemo: powering the VM off (ACPI power button)…");
  try {
    await vm.powerdown();
    await vm.waitExit(60_000);
  } finally {
    await vm.kill();
    rmSync(dir, { recursive: true, force: true });
    console.log("demo: VM is off.");
    process.exit(0);
  }
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
await vm.waitFor(/hero-init boot: READY/, 180_000);
const url = `http://127.0.0.1:${vm.ports[9999]}/health`;
const res = await fetch(url);
console.log(
  `demo: READY. hero-init is PID 1; health endpoint: ${url} → ${res.status} ${await res.text()}`,
);
console.log(`demo: console log: ${vm.logFile}`);
console.log("demo: press Ctrl-C to power the VM off.");
if (process.env.DEMO_EXIT_AFTER_READY) await stop();
