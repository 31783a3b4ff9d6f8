/**
 * hero-init's readiness notification and periodic jobs in a real VM (issue
 * 16): a `notify: true` service stays Spawned until it sends READY=1 on its
 * NOTIFY_SOCKET (a real unix datagram, sent by busybox's syslog client
 * through /dev/log pointed at the socket, so nothing of hero-init's sends
 * it), and its dependant starts only then; an `every` oneshot runs again on
 * its period, Success between runs.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { expectInOrder, positionOf } from "../order.ts";
import { buildImage, serviceFiles, testVmToml } from "../vm/image.ts";
import { bootVm, READY } from "../vm/qemu.ts";

setDefaultTimeout(240_000);
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-notify-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A daemon that gets ready late: says so on stdout, then sends READY=1 (a syslog datagram whose second line is READY=1). */
const DAEMON = `#!/bin/sh
echo "SOCKET=$NOTIFY_SOCKET"
sleep 2
echo SENDING-READY
busybox ln -sf "$NOTIFY_SOCKET" /dev/log
busybox logger -t daemon "$(printf 'up\\nREADY=1')"
exec sleep 1000
`;

describe("readiness notification and periodic jobs in the VM", () => {
  test("notify: dependants start after READY=1, not after spawn; every: runs again on its period", async () => {
    const initrd = await buildImage(join(dir, "notify.cpio"), {
      kernel,
      busybox: true,
      vmToml: testVmToml(),
      extra: [
        ...serviceFiles({
          daemon: "exec: /daemon.sh\nnotify: true\nlog: stdout\n",
          dependant: `exec: sh -c "echo DEPENDANT-STARTED"\noneshot: true\nafter: [daemon]\nlog: stdout\n`,
          tick: `exec: sh -c "echo TICK; echo x >> /run/ticks"\noneshot: true\nevery: 2\nlog: stdout\n`,
          // Powers off once tick has run three times (a bounded poll, not a guess at TCG's speed).
          term: `exec: sh -c "for i in $(seq 600); do [ $(cat /run/ticks 2>/dev/null | wc -l) -ge 3 ] && break; sleep 0.2; done; kill -TERM 1"\noneshot: true\nafter: [dependant]\n`,
        }),
        { type: "file", path: "daemon.sh", mode: 0o755, data: new TextEncoder().encode(DAEMON) },
      ],
    });
    await using vm = await bootVm({ kernel, initrd, name: "notify-every" });
    await vm.waitFor(READY);
    expect(await vm.waitExit(120_000)).toBe(0);
    const out = vm.console();
    expect(out).toContain("daemon: SOCKET=/run/hero-init/notify/daemon.sock");
    expectInOrder(
      out,
      /daemon: Blocked → Spawned/,
      /daemon: SENDING-READY/,
      /daemon: Spawned → Running/,
      /dependant: Blocked → Spawned/,
      /dependant: DEPENDANT-STARTED/,
    );
    // Spawned until READY=1: the dependant had not started before the daemon sent it.
    expect(out.indexOf("DEPENDANT-STARTED")).toBeGreaterThan(out.indexOf("SENDING-READY"));
    // The periodic oneshot: several runs, Success between them, each run from Success again.
    expect(out.match(/tick: TICK/g)?.length ?? 0).toBeGreaterThanOrEqual(3);
    const done = positionOf(out, /tick: Running → Success/);
    const again = positionOf(out, /tick: Success → Blocked/, done);
    positionOf(out, /tick: Running → Success/, again);
  });
});
