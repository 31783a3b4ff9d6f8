/**
 * The only home of bun:ffi in hero-init: thin, typed wrappers over the libc
 * calls Bun does not expose (mount, reboot, waitpid, finit_module, ioctl…).
 *
 * Every wrapper returns normally and throws a HeroError "sys.<ERRNO>" on
 * failure, with errno and the call's name, so callers never see a raw -1.
 * libc is opened lazily: the host-side commands of the same binary never
 * touch it.
 */
import { dlopen, FFIType, ptr, read } from "bun:ffi";
import { constants } from "node:os";
import { HeroError } from "../lib/errors.ts";

const { i32, u32, i64, u64, ptr: P, cstring, void: V } = FFIType;

function openLibc() {
  return dlopen("libc.so.6", {
    __errno_location: { args: [], returns: P },
    mount: { args: [P, P, P, u64, P], returns: i32 },
    umount2: { args: [P, i32], returns: i32 },
    reboot: { args: [i32], returns: i32 },
    sync: { args: [], returns: V },
    waitpid: { args: [i32, P, i32], returns: i32 },
    kill: { args: [i32, i32], returns: i32 },
    syscall: { args: [i64, i64, i64, i64], returns: i64 },
    sethostname: { args: [P, u64], returns: i32 },
    ioctl: { args: [i32, u64, P], returns: i32 },
    socket: { args: [i32, i32, i32], returns: i32 },
    close: { args: [i32], returns: i32 },
    prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
    strerror: { args: [i32], returns: cstring },
    chroot: { args: [P], returns: i32 },
    pipe2: { args: [P, i32], returns: i32 },
    execve: { args: [P, P, P], returns: i32 },
    bind: { args: [i32, P, u32], returns: i32 },
    listen: { args: [i32, i32], returns: i32 },
    accept4: { args: [i32, P, P, i32], returns: i32 },
    connect: { args: [i32, P, u32], returns: i32 },
    fcntl: { args: [i32, i32, i32], returns: i32 },
    setsockopt: { args: [i32, i32, i32, P, u32], returns: i32 },
    sendto: { args: [i32, P, u64, i32, P, u32], returns: i64 },
    recv: { args: [i32, P, u64, i32], returns: i64 },
    madvise: { args: [u64, u64, i32], returns: i32 },
  });
}

let lib: ReturnType<typeof openLibc> | null = null;
function libc() {
  lib ??= openLibc();
  return lib.symbols;
}

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, n]) => [n as number, name]),
);

/** A failed system call: code "sys." + the errno name (sys.ENOENT, sys.EBUSY…), detail errno and call. */
function sysError(call: string, errno: number, what: string): HeroError {
  const name = errnoNames.get(errno) ?? `E${errno}`;
  return new HeroError(
    `sys.${name}`,
    `${call}(${what}): ${name} (${libc().strerror(errno)})`,
    {},
    { errno, call },
  );
}

function errno(): number {
  const at = libc().__errno_location();
  return at === null ? 0 : read.i32(at, 0);
}

/** NUL-terminated bytes for a C string argument; kept alive by the caller. */
function cstr(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

function check(rc: number | bigint, call: string, detail: string): number {
  if (Number(rc) < 0) throw sysError(call, errno(), detail);
  return Number(rc);
}

/** mount(2) flags we use. */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  REMOUNT: 32,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  PRIVATE: 1 << 18,
  RELATIME: 1 << 21,
} as const;

/** mount(2). `data` is the comma-separated option string. */
export function mount(
  source: string,
  target: string,
  fstype: string | null,
  flags: number,
  data?: string,
): void {
  const s = cstr(source);
  const t = cstr(target);
  const f = fstype === null ? null : cstr(fstype);
  const d = data === undefined ? null : cstr(data);
  const rc = libc().mount(ptr(s), ptr(t), f ? ptr(f) : null, flags, d ? ptr(d) : null);
  check(rc, "mount", `${fstype ?? "-"} ${source} on ${target}`);
}

/** umount2(2) flags. */
export const MNT = { FORCE: 1, DETACH: 2 } as const;

/** umount2(2). */
export function umount(target: string, flags = 0): void {
  const t = cstr(target);
  check(libc().umount2(ptr(t), flags), "umount2", target);
}

/** reboot(2) commands (the `howto` values of glibc's reboot()). */
export const RB = {
  AUTOBOOT: 0x01234567,
  HALT: 0xcdef0123,
  POWER_OFF: 0x4321fedc,
  ENABLE_CAD: 0x89abcdef,
  DISABLE_CAD: 0,
} as const;

/** reboot(2); for AUTOBOOT/POWER_OFF it does not return on success. */
export function reboot(cmd: number): void {
  check(libc().reboot(cmd | 0), "reboot", `0x${(cmd >>> 0).toString(16)}`);
}

/** sync(2): flush every filesystem. */
export function sync(): void {
  libc().sync();
}

/** waitpid(2) options. */
export const WNOHANG = 1;

/**
 * waitpid(pid, WNOHANG). Returns null when the child has not exited yet,
 * otherwise its pid and raw wait status.
 */
export function waitpidNoHang(pid: number): { pid: number; status: number } | null {
  const status = new Int32Array(1);
  const rc = libc().waitpid(pid, ptr(status), WNOHANG);
  if (rc === 0) return null;
  check(rc, "waitpid", String(pid));
  return { pid: rc, status: status[0] ?? 0 };
}

/** kill(2); pid -1 means every process but PID 1 and kernel threads. */
export function kill(pid: number, signal: number): void {
  check(libc().kill(pid, signal), "kill", `${pid}, ${signal}`);
}

const SYS_finit_module = 313n;
/** finit_module flag: let the kernel decompress .ko.xz / .ko.zst itself. */
export const MODULE_INIT_COMPRESSED_FILE = 4;

/** finit_module(2) on an open module file descriptor. */
export function finitModule(fd: number, params = "", flags = 0): void {
  const p = cstr(params);
  const rc = libc().syscall(SYS_finit_module, BigInt(fd), BigInt(ptr(p)), BigInt(flags));
  check(rc, "finit_module", `fd ${fd}`);
}

/** madvise(2) advice: reclaim the range's pages now (Linux 5.4+); clean file pages are re-read on use. */
export const MADV_PAGEOUT = 21;

/** madvise(2) on [start, start + length); start is page-aligned (a /proc/self/maps range). */
export function madvise(start: bigint, length: bigint, advice: number): void {
  check(
    libc().madvise(start, length, advice),
    "madvise",
    `0x${start.toString(16)}, ${length}, ${advice}`,
  );
}

/** sethostname(2). */
export function sethostname(name: string): void {
  const b = Buffer.from(name, "utf8");
  check(libc().sethostname(ptr(b), b.length), "sethostname", name);
}

/** socket(2), used only as a handle for network ioctls. */
export function socket(domain: number, type: number, protocol = 0): number {
  return check(libc().socket(domain, type, protocol), "socket", `${domain}, ${type}`);
}

/** close(2). */
export function close(fd: number): void {
  libc().close(fd);
}

/** ioctl(2) with a buffer argument the kernel reads and/or fills in. */
export function ioctl(fd: number, request: number, arg: Uint8Array, what: string): void {
  check(libc().ioctl(fd, request, ptr(arg)), "ioctl", what);
}

const PR_SET_CHILD_SUBREAPER = 36;
/** Makes orphans of our descendants reparent to us (init mode outside PID 1). */
export function setChildSubreaper(): void {
  check(libc().prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl", "PR_SET_CHILD_SUBREAPER");
}

/** chroot(2) (used once, by switch-root). */
export function chroot(path: string): void {
  const p = cstr(path);
  check(libc().chroot(ptr(p)), "chroot", path);
}

const O_CLOEXEC = 0o2000000;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** pipe2(O_CLOEXEC): [read end, write end]. */
export function pipe(): [number, number] {
  const fds = new Int32Array(2);
  check(libc().pipe2(ptr(fds), O_CLOEXEC), "pipe2", "O_CLOEXEC");
  return [fds[0] as number, fds[1] as number];
}

/** Sets or clears FD_CLOEXEC (a descriptor handed to the next program across execve keeps it clear). */
export function setCloexec(fd: number, on: boolean): void {
  const flags = check(libc().fcntl(fd, F_GETFD, 0), "fcntl", `${fd}, F_GETFD`);
  const next = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  check(libc().fcntl(fd, F_SETFD, next), "fcntl", `${fd}, F_SETFD`);
}

/**
 * execve(2) straight from libc. Bun's process.execve closes every
 * descriptor above 2 first; a self-update must keep the services' output
 * pipes open (those with FD_CLOEXEC cleared) across the exec. Returns only
 * on failure (throws a HeroError "sys.*").
 */
export function execve(
  path: string,
  argv: string[],
  env: Record<string, string | undefined>,
): never {
  const keep: Buffer[] = [];
  const array = (items: string[]) => {
    const ptrs = new BigUint64Array(items.length + 1);
    items.forEach((s, i) => {
      const b = cstr(s);
      keep.push(b);
      ptrs[i] = BigInt(ptr(b));
    });
    return ptrs;
  };
  const file = cstr(path);
  const av = array(argv);
  const ev = array(
    Object.entries(env)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => `${k}=${v}`),
  );
  const rc = libc().execve(ptr(file), ptr(av), ptr(ev));
  check(rc, "execve", path);
  throw sysError("execve", 0, `${path}: returned ${rc}`);
}

const AF_VSOCK = 40;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
/** Any CID (listen). */
export const VMADDR_CID_ANY = 0xffffffff;

/** Pure: struct sockaddr_vm (16 bytes: family, reserved, port, cid, zero[4]). */
export function sockaddrVm(cid: number, port: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_VSOCK, true);
  v.setUint32(4, port >>> 0, true);
  v.setUint32(8, cid >>> 0, true);
  return b;
}

/** A non-blocking AF_VSOCK listener on `port` (any CID); returns its fd. */
export function vsockListen(port: number, backlog = 16): number {
  const fd = check(
    libc().socket(AF_VSOCK, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
    "socket",
    "AF_VSOCK",
  );
  try {
    const addr = sockaddrVm(VMADDR_CID_ANY, port);
    check(libc().bind(fd, ptr(addr), addr.length), "bind", `vsock port ${port}`);
    check(libc().listen(fd, backlog), "listen", `vsock port ${port}`);
    return fd;
  } catch (e) {
    libc().close(fd);
    throw e;
  }
}

/** accept4 without blocking: a new non-blocking fd, or null when nobody is waiting. */
export function acceptNonBlocking(fd: number): number | null {
  const rc = libc().accept4(fd, null, null, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (rc >= 0) return rc;
  const e = errno();
  if (tryAgainLater(e)) return null;
  throw sysError("accept4", e, String(fd));
}

/**
 * True for the errors of a non-blocking call that mean "nothing yet":
 * EAGAIN/EWOULDBLOCK, and EINTR (a signal, SIGCHLD often, arrived during
 * the call): the next tick tries again.
 */
function tryAgainLater(e: number): boolean {
  return (
    e === constants.errno.EAGAIN || e === constants.errno.EWOULDBLOCK || e === constants.errno.EINTR
  );
}

/** A blocking AF_VSOCK connection to cid:port (the CLI's client side); returns its fd. */
export function vsockConnectFd(cid: number, port: number): number {
  const fd = check(libc().socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0), "socket", "AF_VSOCK");
  const addr = sockaddrVm(cid, port);
  const rc = libc().connect(fd, ptr(addr), addr.length);
  if (rc < 0) {
    const e = errno();
    libc().close(fd);
    throw sysError("connect", e, `vsock ${cid}:${port}`);
  }
  return fd;
}

const AF_UNIX = 1;
const SOCK_DGRAM = 2;

/** Pure: struct sockaddr_un for a filesystem path (family, then the NUL-terminated path; at most 107 bytes). */
export function sockaddrUn(path: string): Uint8Array {
  const p = Buffer.from(path, "utf8");
  if (p.length === 0 || p.length > 107 || p.includes(0))
    throw new HeroError("sys.EINVAL", `unix socket path "${path}": empty, too long or has a NUL`);
  const b = new Uint8Array(2 + p.length + 1);
  new DataView(b.buffer).setUint16(0, AF_UNIX, true);
  b.set(p, 2);
  return b;
}

/**
 * A non-blocking AF_UNIX datagram socket bound to `path` (systemd's
 * NOTIFY_SOCKET, which Bun cannot open); returns its fd. Read it with
 * fs.readSync: each read is one datagram, EAGAIN when none is waiting.
 */
export function unixDatagramBind(path: string): number {
  const addr = sockaddrUn(path);
  const fd = check(
    libc().socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0),
    "socket",
    "AF_UNIX",
  );
  try {
    check(libc().bind(fd, ptr(addr), addr.length), "bind", path);
    return fd;
  } catch (e) {
    libc().close(fd);
    throw e;
  }
}

/** setsockopt(2) with the option's value as bytes (an int is 4 little-endian bytes). */
export function setsockopt(
  fd: number,
  level: number,
  name: number,
  value: Uint8Array,
  what: string,
): void {
  check(libc().setsockopt(fd, level, name, ptr(value), value.length), "setsockopt", what);
}

/** bind(2) to a socket address built by the caller. */
export function bindAddr(fd: number, addr: Uint8Array, what: string): void {
  check(libc().bind(fd, ptr(addr), addr.length), "bind", what);
}

/** sendto(2) one datagram to `addr`. */
export function sendTo(fd: number, data: Uint8Array, addr: Uint8Array, what: string): void {
  check(libc().sendto(fd, ptr(data), data.length, 0, ptr(addr), addr.length), "sendto", what);
}

const MSG_DONTWAIT = 0x40;
/** recv(2) without blocking: the datagram's length (truncated to `buf`), or null when none is waiting. */
export function recvNonBlocking(fd: number, buf: Uint8Array): number | null {
  const rc = Number(libc().recv(fd, ptr(buf), buf.length, MSG_DONTWAIT));
  if (rc >= 0) return rc;
  const e = errno();
  if (tryAgainLater(e)) return null;
  throw sysError("recv", e, String(fd));
}
