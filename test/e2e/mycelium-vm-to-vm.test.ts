/**
 * Two VMs on the real mycelium overlay that peer only through the host
 * node: each VM has its own tap device (its own link, 2001:db8:a::/64 and
 * 2001:db8:b::/64) into the test's network namespace, where the host-side
 * node runs; each VM's only static peer is the node's address on its link,
 * and there is no common link for mycelium's link-local discovery. Both are
 * deployed by deployVm from a signed manifest, as in mycelium.test.ts.
 * From inside VM A (driven through its agent on a port forward): VM B's
 * /health over the overlay, and hero-init's own agent client running a
 * command in VM B over the overlay with B's token (B's agent logs A's
 * overlay address as the client); a wrong token is refused.
 */

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Deployment } from "../../host/deploy.ts";
import { ensureKernel } from "../../host/kernel.ts";
import { until } from "../helpers/poll.ts";
import {
  deployWithMycelium,
  MyceliumNode,
  Netns,
  overlayVmConfig,
  peerSocket,
  tapNic,
} from "../vm/mycelium-node.ts";
import { bootVm, type Vm } from "../vm/qemu.ts";

setDefaultTimeout(900_000);

interface Side {
  name: "a" | "b";
  tap: string;
  hostLink: string;
  vmLink: string;
  d: Deployment;
  vm: Vm;
  /** Its agent on the namespace's loopback (QEMU port forward). */
  agent: string;
  address: string;
}

let dir: string;
let ns: Netns;
let node: MyceliumNode;
const sides: Side[] = [];
const timings: string[] = [];
const side = (n: "a" | "b") => sides.find((s) => s.name === n) as Side;

/** Runs argv in a VM through its agent (from the namespace, not over the overlay). */
const inVm = (s: Side, argv: string[]) => ns.agent(s.agent, s.d.agentToken, ["exec"], argv);

beforeAll(async () => {
  const kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-myc2-"));
  ns = Netns.create(`hero-myc2-${process.pid}`);
  node = await MyceliumNode.start(ns, dir);
  for (const name of ["a", "b"] as const) {
    const hostLink = `2001:db8:${name}::1`;
    const vmLink = `2001:db8:${name}::2`;
    const tap = `tapmyc${name}`;
    ns.addTap(tap, [hostLink]);
    const d = await deployWithMycelium(
      dir,
      `vm-${name}`,
      overlayVmConfig({ hostname: `myc-${name}`, vmLink, hostLink }),
      kernel,
    );
    const vm = await bootVm({
      kernel: d.kernel,
      initrd: d.initrd,
      netns: ns.name,
      hostfwd: [9998],
      name: `mycelium-vm-${name}`,
      extraArgs: tapNic(tap),
    });
    const agent = `127.0.0.1:${vm.ports[9998]}`;
    sides.push({ name, tap, hostLink, vmLink, d, vm, agent, address: d.myceliumAddress as string });
  }
});

afterAll(async () => {
  for (const s of sides) await s.vm.kill();
  await node?.stop();
  ns?.close();
  if (timings.length) console.log(`mycelium VM-to-VM timings:\n  ${timings.join("\n  ")}`);
  rmSync(dir, { recursive: true, force: true });
});

describe("two VMs over the real overlay", () => {
  test("both VMs come up on their predicted addresses and peer only with the host node", async () => {
    const t0 = Date.now();
    for (const s of sides) {
      await s.vm.waitFor(/hero-init boot: READY/, 300_000);
      const line = await s.vm.waitFor(/mycelium: address \S+ on mycelium/, 180_000);
      expect(line).toBe(`mycelium: address ${s.address} on mycelium`);
      await until(
        `the host node sees VM ${s.name}`,
        () => node.hasAlivePeerFrom(s.vmLink) || undefined,
        120_000,
      );
    }
    timings.push(`both VMs up and peered: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(side("a").address).not.toBe(side("b").address);
    // Each VM's real daemon has exactly one peer: the host node on its own link.
    for (const s of sides) {
      const r = inVm(s, ["hero-init", "mycelium", "peers", "--json"]);
      expect(r.code).toBe(0);
      const peers = JSON.parse(r.stdout) as Parameters<typeof peerSocket>[0][];
      expect(peers.map((p) => [peerSocket(p), p.connectionState])).toEqual([
        [`[${s.hostLink}]:9651`, "alive"],
      ]);
    }
  });

  test("VM A reaches VM B's UI over the overlay", async () => {
    const a = side("a");
    const b = side("b");
    const t0 = Date.now();
    // Routes through the host node may take a moment to propagate: retry until it answers.
    // The request is written by hand to busybox nc: the minimal template's static busybox
    // wget crashes without glibc's NSS (SIGSEGV), nc takes a numeric address as is.
    const request = `GET /health HTTP/1.0\\r\\nHost: [${b.address}]:9999\\r\\n\\r\\n`;
    const health = await until(
      "B's /health from A",
      () => {
        const r = inVm(a, ["sh", "-c", `printf '${request}' | nc -w 10 ${b.address} 9999`]);
        const [head = "", body = ""] = r.stdout.split("\r\n\r\n");
        if (!/^HTTP\/1\.[01] 200 /.test(head))
          throw new Error(`nc exited ${r.code}: ${r.stdout.slice(0, 200)} ${r.stderr.trim()}`);
        return JSON.parse(body) as Record<string, unknown>;
      },
      120_000,
    );
    timings.push(`A → B /health: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(health).toMatchObject({
      status: "ok",
      hostname: "myc-b",
      mycelium: { state: "up", address: b.address },
    });
  });

  test("VM A runs a command in VM B through B's agent over the overlay, with B's token", async () => {
    const a = side("a");
    const b = side("b");
    const from = b.vm.cleanConsole().length;
    const viaOverlay = (token: string, argv: string[]) =>
      inVm(a, ["hero-init", "agent", "exec", "--addr", b.address, "--token", token, "--", ...argv]);
    const ok = viaOverlay(b.d.agentToken, ["hostname"]);
    expect(ok).toMatchObject({ code: 0, stdout: "myc-b\n" });
    // B's agent saw the request come from A's overlay address.
    await b.vm.waitFor(`agent: exec hostname for ${a.address}`, 30_000, from);
    // The remote exit code comes back as the client's.
    expect(viaOverlay(b.d.agentToken, ["sh", "-c", "exit 7"]).code).toBe(7);
    // A's own token is not B's: refused (an agent error is exit 255, as ssh does).
    const wrong = viaOverlay(a.d.agentToken, ["hostname"]);
    expect(wrong.code).toBe(255);
    expect(wrong.stdout).toBe("");
    expect(wrong.stderr).toContain("hero-init agent:");
  });
});
