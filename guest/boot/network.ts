/**
 * Boot step 7: loopback up, each configured interface given its static
 * address, MTU and default route, and DNS written to /etc/resolv.conf. All
 * through ioctl(2) (sys/net.ts): no tool from the rootfs is used.
 * Interfaces with `dhcp = true` are brought up with router advertisements
 * accepted, and handed to the DHCP client (./dhcp.ts, loaded only then).
 */
import { existsSync, writeFileSync } from "node:fs";
import ipaddr from "ipaddr.js";
import { describeError, log } from "../../lib/log.ts";
import { defaultVmConfig, type VmConfig } from "../../lib/vm-config.ts";
import { addDefaultRoute, addIpv6, linkUp, setIpv4, setMtu } from "../../sys/net.ts";
import type { BootStep } from "./context.ts";
import { applyHostname } from "./hostname.ts";

/** How long to wait for a NIC whose driver was just loaded to appear. */
const LINK_WAIT_MS = 10_000;
/** How long boot waits for DHCP leases before going on (the clients keep trying). */
const DHCP_WAIT_MS = 10_000;

/** Pure: resolv.conf text for the config, or null when no DNS is configured. */
export function resolvConf(net: VmConfig["network"]): string | null {
  if (net.dns.length === 0) return null;
  const lines = ["# written by hero-init", ...net.dns.map((d) => `nameserver ${d}`)];
  if (net.search.length) lines.push(`search ${net.search.join(" ")}`);
  return `${lines.join("\n")}\n`;
}

async function waitForLink(name: string): Promise<boolean> {
  const deadline = Date.now() + LINK_WAIT_MS;
  while (Date.now() < deadline) {
    if (existsSync(`/sys/class/net/${name}`)) return true;
    await Bun.sleep(25);
  }
  return false;
}

/** The network step. */
export const networkStep: BootStep = {
  name: "network",
  async run(ctx) {
    try {
      linkUp("lo");
      log.info("network", "lo up");
    } catch (e) {
      log.error("network", `lo: ${(e as Error).message}`);
    }
    const dhcp: VmConfig["network"]["interfaces"] = [];
    for (const iface of ctx.config.network.interfaces) {
      if (!(await waitForLink(iface.name))) {
        log.error(
          "network",
          `${iface.name}: no such interface after ${LINK_WAIT_MS / 1000}s (driver module loaded?)`,
        );
        continue;
      }
      try {
        if (iface.mtu) setMtu(iface.name, iface.mtu);
        if (iface.dhcp) acceptRouterAdvertisements(iface.name);
        if (iface.address) {
          const [ip, prefix] = iface.address.split("/") as [string, string];
          setIpv4(iface.name, ip, Number(prefix));
        }
        linkUp(iface.name);
        if (iface.dhcp) dhcp.push(iface);
        if (iface.address6) {
          const [ip6, len6] = iface.address6.split("/") as [string, string];
          addIpv6(iface.name, new Uint8Array(ipaddr.IPv6.parse(ip6).toByteArray()), Number(len6));
        }
        if (iface.gateway) addDefaultRoute(iface.gateway);
        log.info(
          "network",
          `${iface.name} ${iface.dhcp ? "(DHCP)" : (iface.address ?? "(no address)")}${iface.gateway ? ` via ${iface.gateway}` : ""}${iface.address6 ? ` ${iface.address6}` : ""} up`,
        );
      } catch (e) {
        log.error("network", `${iface.name}: ${(e as Error).message}`);
      }
    }
    const resolv = resolvConf(ctx.config.network);
    if (resolv !== null) {
      try {
        writeFileSync("/etc/resolv.conf", resolv);
      } catch (e) {
        log.error("network", `/etc/resolv.conf: ${(e as Error).message}`);
      }
    }
    if (dhcp.length > 0) await runDhcp(ctx.config, dhcp);
  },
};

/**
 * IPv6 on a DHCP interface comes from router advertisements: accept them
 * even if forwarding is on (accept_ra 2) and form addresses from their
 * prefixes (autoconf). Set before the link comes up, so its first router
 * solicitation already counts.
 */
function acceptRouterAdvertisements(name: string): void {
  for (const [key, value] of [
    ["accept_ra", "2"],
    ["autoconf", "1"],
  ] as const) {
    try {
      writeFileSync(`/proc/sys/net/ipv6/conf/${name}/${key}`, value);
    } catch (e) {
      log.warn("network", `${name}: cannot set ipv6 ${key}: ${describeError(e)}`);
    }
  }
}

/**
 * After a self-update re-exec the addresses are still set, but the DHCP
 * clients ended with the old process: start them again, without waiting,
 * so leases keep being renewed.
 */
export const dhcpResumeStep: BootStep = {
  name: "dhcp",
  async run(ctx) {
    const dhcp = ctx.config.network.interfaces.filter((i) => i.dhcp);
    if (dhcp.length > 0) await runDhcp(ctx.config, dhcp, 0);
  },
};

async function runDhcp(
  config: VmConfig,
  ifaces: VmConfig["network"]["interfaces"],
  waitMs = DHCP_WAIT_MS,
) {
  const named = config.hostname !== defaultVmConfig().hostname;
  const { startDhcp } = await import("./dhcp.ts");
  await startDhcp(
    ifaces.map((i) => ({
      name: i.name,
      staticDns: config.network.dns.length > 0,
      search: config.network.search,
      resolvPath: "/etc/resolv.conf",
      mtu: i.mtu,
      hostname: named ? config.hostname : undefined,
      // The lease's host name is used only when vm.toml and the kernel line name none.
      setHostname: named ? undefined : (name) => applyHostname(name, " (from DHCP)"),
    })),
    waitMs,
  );
}
