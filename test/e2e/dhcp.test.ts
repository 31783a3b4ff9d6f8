/**
 * DHCP in QEMU (TCG): hero-init as PID 1 with `ip=dhcp` on the kernel line
 * and no address in vm.toml gets its lease from QEMU's user network (slirp:
 * 10.0.2.15, router 10.0.2.2, DNS 10.0.2.3), writes /etc/resolv.conf from
 * it, and the UI answers through a host forward to that address.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureKernel, type Kernel } from "../../host/kernel.ts";
import { buildImage, serviceFiles } from "../vm/image.ts";
import { bootVm } from "../vm/qemu.ts";

setDefaultTimeout(300_000);
/** Waits (up to 60 s, in the guest) for a SLAAC address from slirp's router advertisement (prefix fec0::/64). */
const RA_SCRIPT = `#!/bin/sh
n=0
while [ $n -lt 60 ] && ! busybox ip -6 addr show dev eth0 | busybox grep -q 'inet6 fec0:'; do
  n=$((n + 1))
  sleep 1
done
busybox ip -6 addr show dev eth0 | busybox grep 'inet6 fec0:' | sed 's/^/NET6 /'
busybox ip -6 route | busybox grep default | sed 's/^/NET6 /'
echo NET6 done
`;
let kernel: Kernel;
let dir: string;

beforeAll(async () => {
  kernel = await ensureKernel();
  dir = mkdtempSync(join(tmpdir(), "hero-dhcp-e2e-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("DHCP in a VM", () => {
  test("ip=dhcp: slirp's lease (10.0.2.15 via 10.0.2.2, DNS 10.0.2.3) is applied and the UI answers", async () => {
    // No [[network.interfaces]]: the kernel line asks for DHCP on eth0.
    const toml = `modules = ["virtio_pci", "virtio_net"]\n[ui]\nlisten = ["0.0.0.0"]\nallow = ["10.0.2.2/32"]\n`;
    const initrd = await buildImage(join(dir, "dhcp.cpio"), {
      kernel,
      vmToml: toml,
      busybox: true,
      // What the kernel and the rootfs say, not what hero-init logs.
      extra: [
        { type: "dir", path: "opt", mode: 0o755 },
        { type: "file", path: "opt/ra.sh", mode: 0o755, data: new TextEncoder().encode(RA_SCRIPT) },
        ...serviceFiles({
          ra: "exec: /opt/ra.sh\noneshot: true\nlog: stdout\n",
          netcheck:
            "exec: sh -c \"busybox ip -4 addr show dev eth0 | sed 's/^/NET /'; busybox ip -4 route | sed 's/^/NET /'; sed 's/^/RESOLV /' /etc/resolv.conf\"\noneshot: true\nlog: stdout\n",
        }),
      ],
    });
    await using vm = await bootVm({
      kernel,
      initrd,
      hostfwd: [9999],
      append: "ip=dhcp",
      name: "dhcp-slirp",
    });
    await vm.waitFor(/hero-init boot: READY/, 180_000);
    await vm.waitFor("RESOLV nameserver 10.0.2.3", 60_000);
    await vm.waitFor("NET6 done", 90_000);
    const out = vm.console();
    expect(out).toContain("dhcp: eth0: asking for a lease");
    expect(out).toMatch(
      /dhcp: eth0 10\.0\.2\.15\/24 via 10\.0\.2\.2 from 10\.0\.2\.2 \(lease \d+ s, dns 10\.0\.2\.3\)/,
    );
    // The lease came before READY (boot waited for it), so the service saw it.
    expect(out.indexOf("dhcp: eth0 10.0.2.15/24")).toBeLessThan(out.indexOf("boot: READY"));
    expect(out).toMatch(/NET\s+inet 10\.0\.2\.15\/24 /);
    expect(out).toMatch(/NET default via 10\.0\.2\.2 dev eth0/);
    expect(out).toContain("RESOLV # written by hero-init (DHCP)");
    expect(out).not.toContain("no DHCP lease");
    // Router advertisements accepted on the DHCP interface: a SLAAC address and an IPv6 default route.
    expect(out).toMatch(/NET6\s+inet6 fec0::[0-9a-f:]+\/64 /);
    expect(out).toMatch(/NET6 default via fe80::[0-9a-f:]+ dev eth0/);
    const res = await fetch(`http://127.0.0.1:${vm.ports[9999]}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: "ok" });
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
  });

  test("vm.toml dhcp = true on a second NIC: its lease names the host (none configured), static DNS is kept", async () => {
    // eth0 static as usual; eth1 on a second user network whose DHCP server sends a host name.
    const toml = `modules = ["virtio_pci", "virtio_net"]\n[network]\ndns = ["10.0.2.3"]\n[[network.interfaces]]\nname = "eth0"\naddress = "10.0.2.15/24"\ngateway = "10.0.2.2"\n[[network.interfaces]]\nname = "eth1"\ndhcp = true\n[ui]\nlisten = ["0.0.0.0"]\nallow = ["10.0.2.2/32"]\n`;
    const initrd = await buildImage(join(dir, "dhcp-eth1.cpio"), {
      kernel,
      vmToml: toml,
      busybox: true,
      extra: serviceFiles({
        netcheck:
          "exec: sh -c \"busybox ip -4 addr show dev eth1 | sed 's/^/NET /'; sed 's/^/RESOLV /' /etc/resolv.conf; echo NET done\"\noneshot: true\nlog: stdout\n",
      }),
    });
    await using vm = await bootVm({
      kernel,
      initrd,
      hostfwd: [9999],
      name: "dhcp-eth1",
      extraArgs: [
        "-netdev",
        "user,id=n1,net=10.0.3.0/24,hostname=leasehost",
        "-device",
        "virtio-net-pci,netdev=n1,romfile=",
      ],
    });
    await vm.waitFor(/hero-init boot: READY/, 180_000);
    await vm.waitFor("NET done", 60_000);
    const out = vm.console();
    expect(out).toContain("network: eth0 10.0.2.15/24 via 10.0.2.2 up");
    expect(out).toMatch(/dhcp: eth1 10\.0\.3\.15\/24 via 10\.0\.3\.2 from 10\.0\.3\.2 /);
    expect(out).toContain("hostname: leasehost (from DHCP)");
    expect(out).toMatch(/NET\s+inet 10\.0\.3\.15\/24 /);
    // [network] dns is static: the lease's DNS (10.0.3.3) does not replace it.
    expect(out).toContain("RESOLV nameserver 10.0.2.3");
    expect(out).not.toContain("RESOLV nameserver 10.0.3.3");
    const res = await fetch(`http://127.0.0.1:${vm.ports[9999]}/health`);
    expect(await res.json()).toMatchObject({ status: "ok", hostname: "leasehost" });
    await vm.powerdown();
    expect(await vm.waitExit(60_000)).toBe(0);
  });
});
