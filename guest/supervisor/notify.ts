/**
 * Readiness notification (a service with `notify: true`): systemd's
 * NOTIFY_SOCKET protocol, so daemons that call sd_notify("READY=1") (or run
 * `systemd-notify --ready`) work unchanged. One datagram socket per service,
 * opened at spawn and closed on READY=1 or exit; the service's state stays
 * Spawned (dependants wait) until READY=1. Everything is bounded: a datagram
 * is read into NOTIFY_MAX_BYTES (the rest is cut by the kernel), at most
 * NOTIFY_BURST datagrams are read per poll, and the kernel's queue bounds
 * what waits.
 */

import { chmodSync, chownSync, closeSync, mkdirSync, readSync, rmSync } from "node:fs";
import { join } from "node:path";
import { LAYOUT } from "../../lib/layout.ts";
import { unixDatagramBind } from "../../sys/ffi.ts";

/** Bytes of a datagram read (sd_notify messages are a few variables). */
export const NOTIFY_MAX_BYTES = 4096;
/** Datagrams read per poll; more wait in the kernel's queue for the next. */
export const NOTIFY_BURST = 16;
/** How often an open notify socket is read. */
const NOTIFY_POLL_MS = 100;
/** Where the per-service sockets live. */
export const NOTIFY_DIR = LAYOUT.notifyDir;

/** An open NOTIFY_SOCKET. */
export interface NotifySocket {
  /** The path the service gets as NOTIFY_SOCKET. */
  path: string;
  close(): void;
}

/** Pure: whether a notify message (newline-separated VAR=value) says READY=1. */
export function saysReady(message: string): boolean {
  return message.split("\n").some((l) => l === "READY=1");
}

/**
 * Opens the notify socket of `service` under `dir` (owned by `uid` when the
 * service runs as one, mode 0600), reading it every NOTIFY_POLL_MS; each
 * datagram's text goes to `onMessage`. Throws when it cannot be opened.
 */
export function openNotifySocket(
  service: string,
  uid: number | undefined,
  onMessage: (text: string) => void,
  dir: string = NOTIFY_DIR,
): NotifySocket {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, `${service}.sock`);
  rmSync(path, { force: true });
  const fd = unixDatagramBind(path);
  let timer: Timer | undefined;
  const close = () => {
    clearInterval(timer);
    timer = undefined;
    closeSync(fd);
    rmSync(path, { force: true });
  };
  try {
    chmodSync(path, 0o600);
    if (uid !== undefined) chownSync(path, uid, -1);
  } catch (e) {
    close();
    throw e;
  }
  const buf = Buffer.alloc(NOTIFY_MAX_BYTES);
  let open = true;
  timer = setInterval(() => {
    for (let i = 0; i < NOTIFY_BURST && open; i++) {
      let n: number;
      try {
        n = readSync(fd, buf);
      } catch {
        return; // EAGAIN: nothing waiting
      }
      onMessage(buf.subarray(0, n).toString("utf8"));
    }
  }, NOTIFY_POLL_MS);
  return {
    path,
    close() {
      if (!open) return;
      open = false;
      close();
    },
  };
}
