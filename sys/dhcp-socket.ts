/**
 * The DHCP client's socket: UDP port 68 bound to one interface
 * (SO_BINDTODEVICE) with SO_BROADCAST, non-blocking. Bound to the device,
 * a broadcast leaves through that interface even before it has an address,
 * and the server's broadcast replies (we set the broadcast flag) come back
 * to it; no packet socket and no hand-built IP headers are needed.
 */
import { bindAddr, close, recvNonBlocking, sendTo, setsockopt, socket } from "./ffi.ts";
import { putSockaddrIn } from "./net.ts";

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const SO_BROADCAST = 6;
const SO_BINDTODEVICE = 25;
const CLIENT_PORT = 68;
const SERVER_PORT = 67;

/** Pure: struct sockaddr_in (16 bytes) for ip:port. */
function sockaddrIn(ip: string, port: number): Uint8Array {
  const b = new Uint8Array(16);
  putSockaddrIn(b, 0, ip, port);
  return b;
}

function intOpt(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, n, true);
  return b;
}

/** Opens the client socket on `ifname` (it lives as long as PID 1; CLOEXEC, so a re-exec closes it). */
export function openDhcpSocket(ifname: string): number {
  const fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
  try {
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, intOpt(1), "SO_REUSEADDR");
    setsockopt(fd, SOL_SOCKET, SO_BROADCAST, intOpt(1), "SO_BROADCAST");
    const dev = new TextEncoder().encode(`${ifname}\0`);
    setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, dev, `SO_BINDTODEVICE ${ifname}`);
    bindAddr(fd, sockaddrIn("0.0.0.0", CLIENT_PORT), `0.0.0.0:${CLIENT_PORT} on ${ifname}`);
    return fd;
  } catch (e) {
    close(fd);
    throw e;
  }
}

/** Sends one message to a server (or 255.255.255.255) on port 67. */
export function sendDhcp(fd: number, packet: Uint8Array, to: string): void {
  sendTo(fd, packet, sockaddrIn(to, SERVER_PORT), `${to}:${SERVER_PORT}`);
}

/** One waiting datagram into `buf` (its length), or null when none is waiting. */
export function recvDhcp(fd: number, buf: Uint8Array): number | null {
  return recvNonBlocking(fd, buf);
}
