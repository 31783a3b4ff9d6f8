/**
 * Interface configuration through ioctl(2) on a datagram socket: no netlink
 * library, no /sbin/ip, no busybox, so it works on any rootfs.
 */
import { close, ioctl, socket } from "./ffi.ts";

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SIOCADDRT = 0x890b;
const SIOCDELRT = 0x890c;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const SIOCSIFADDR = 0x8916;
const SIOCSIFNETMASK = 0x891c;
const SIOCSIFMTU = 0x8922;
const IFF_UP = 0x1;
const RTF_UP = 0x1;
const RTF_GATEWAY = 0x2;
const IFREQ_SIZE = 40;
const RTENTRY_SIZE = 120;

function ifreq(name: string): Uint8Array {
  const b = new Uint8Array(IFREQ_SIZE);
  const n = new TextEncoder().encode(name);
  if (n.length > 15) throw new Error(`interface name too long: ${name}`);
  b.set(n, 0);
  return b;
}

/** Writes a struct sockaddr_in for `ip`:`port` at `off`. */
export function putSockaddrIn(b: Uint8Array, off: number, ip: string, port = 0): void {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  dv.setUint16(off, AF_INET, true);
  dv.setUint16(off + 2, port, false);
  ip.split(".").forEach((octet, i) => {
    b[off + 4 + i] = Number(octet);
  });
}

/** Dotted netmask for a prefix length. */
export function prefixToMask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((s) => (bits >>> s) & 0xff).join(".");
}

function withSocket<T>(fn: (fd: number) => T): T {
  const fd = socket(AF_INET, SOCK_DGRAM);
  try {
    return fn(fd);
  } finally {
    close(fd);
  }
}

/** Brings an interface up (IFF_UP), keeping its other flags. */
export function linkUp(name: string): void {
  withSocket((fd) => {
    const req = ifreq(name);
    ioctl(fd, SIOCGIFFLAGS, req, `SIOCGIFFLAGS ${name}`);
    const dv = new DataView(req.buffer);
    dv.setUint16(16, dv.getUint16(16, true) | IFF_UP, true);
    ioctl(fd, SIOCSIFFLAGS, req, `SIOCSIFFLAGS ${name}`);
  });
}

/** Sets the interface MTU. */
export function setMtu(name: string, mtu: number): void {
  withSocket((fd) => {
    const req = ifreq(name);
    new DataView(req.buffer).setInt32(16, mtu, true);
    ioctl(fd, SIOCSIFMTU, req, `SIOCSIFMTU ${name} ${mtu}`);
  });
}

/** Sets the primary IPv4 address and netmask of an interface. */
export function setIpv4(name: string, ip: string, prefix: number): void {
  withSocket((fd) => {
    const a = ifreq(name);
    putSockaddrIn(a, 16, ip);
    ioctl(fd, SIOCSIFADDR, a, `SIOCSIFADDR ${name} ${ip}`);
    const m = ifreq(name);
    putSockaddrIn(m, 16, prefixToMask(prefix));
    ioctl(fd, SIOCSIFNETMASK, m, `SIOCSIFNETMASK ${name} /${prefix}`);
  });
}

/** SIOCADDRT or SIOCDELRT on the IPv4 default route via `gateway` (struct rtentry). */
function defaultRoute(request: number, gateway: string, what: string): void {
  withSocket((fd) => {
    const rt = new Uint8Array(RTENTRY_SIZE);
    putSockaddrIn(rt, 8, "0.0.0.0"); // rt_dst
    putSockaddrIn(rt, 24, gateway); // rt_gateway
    putSockaddrIn(rt, 40, "0.0.0.0"); // rt_genmask
    new DataView(rt.buffer).setUint16(56, RTF_UP | RTF_GATEWAY, true); // rt_flags
    ioctl(fd, request, rt, `${what} default via ${gateway}`);
  });
}

/** Adds the IPv4 default route via `gateway`. */
export function addDefaultRoute(gateway: string): void {
  defaultRoute(SIOCADDRT, gateway, "SIOCADDRT");
}

/** Removes the interface's IPv4 address (SIOCSIFADDR 0.0.0.0); the kernel drops the routes through it. */
export function clearIpv4(name: string): void {
  withSocket((fd) => {
    const a = ifreq(name);
    putSockaddrIn(a, 16, "0.0.0.0");
    ioctl(fd, SIOCSIFADDR, a, `SIOCSIFADDR ${name} 0.0.0.0`);
  });
}

/** Deletes the IPv4 default route via `gateway`. */
export function delDefaultRoute(gateway: string): void {
  defaultRoute(SIOCDELRT, gateway, "SIOCDELRT");
}

const AF_INET6 = 10;
const SIOCGIFINDEX = 0x8933;

/** The kernel's index of an interface. */
export function ifIndex(name: string): number {
  return withSocket((fd) => {
    const req = ifreq(name);
    ioctl(fd, SIOCGIFINDEX, req, `SIOCGIFINDEX ${name}`);
    return new DataView(req.buffer).getInt32(16, true);
  });
}

/** Adds an IPv6 address (struct in6_ifreq on an AF_INET6 socket); the kernel adds its prefix route. */
export function addIpv6(name: string, bytes: Uint8Array, prefix: number): void {
  const index = ifIndex(name);
  const fd = socket(AF_INET6, SOCK_DGRAM);
  try {
    const req = new Uint8Array(24); // in6_addr(16) prefixlen(u32) ifindex(i32)
    req.set(bytes, 0);
    const dv = new DataView(req.buffer);
    dv.setUint32(16, prefix, true);
    dv.setInt32(20, index, true);
    ioctl(fd, SIOCSIFADDR, req, `SIOCSIFADDR ${name} ipv6/${prefix}`);
  } finally {
    close(fd);
  }
}
