/**
 * The mycelium service, generated from vm.toml's [mycelium] (pure): the
 * manifest's binary with the persisted key file, TUN name, admin API address
 * and peers, restarted with backoff when it dies. Flags are mycelium's own
 * (see docs/mycelium.md).
 *
 * A glibc-linked mycelium (a local build) in a rootfs without glibc (the
 * minimal template) would fail with ENOENT: its program interpreter is
 * missing. hero-init then starts it through its own private loader with the
 * private library directory (the injector puts libc, libm and libgcc_s
 * there), without touching the binary, so a manifest update still swaps it
 * by its link. A static binary, or one whose interpreter exists, runs as is.
 *
 * It is started once the VM's static IPv6 addresses have passed duplicate
 * address detection (the network-online of a systemd host): a TCP connect to
 * a peer while the link's address is still tentative goes out from ::1, and
 * mycelium waits for that SYN (about 2 minutes) before it tries the peer again.
 */

import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync } from "node:fs";
import { dirname } from "node:path";
import * as v from "valibot";
import { elfInterpreter } from "../../lib/elf.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { log } from "../../lib/log.ts";
import { type ServiceSpec, ServiceSpecSchema } from "../../lib/service-spec.ts";
import type { VmConfig } from "../../lib/vm-config.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";

/** The service's name (a service file of that name in /etc/zinit wins). */
export const MYCELIUM_SERVICE = "mycelium";

/** How the binary is started when it cannot run as is: a loader and its library path. */
export interface Launcher {
  loader: string;
  libraryPath: string;
}

function quote(s: string): string {
  return /^[A-Za-z0-9_@%+=:,./[\]-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Pure: the exec line for the config. --peers comes last: it takes every value after it. */
export function myceliumExec(m: NonNullable<VmConfig["mycelium"]>, via?: Launcher | null): string {
  const args = [
    ...(via ? [via.loader, "--library-path", via.libraryPath] : []),
    m.binary,
    "-k",
    m.key_file,
    "--tun-name",
    m.tun_name,
    "--api-addr",
    m.api_addr,
    ...m.extra_args,
  ];
  if (m.peers.length) args.push("--peers", ...m.peers);
  return args.map(quote).join(" ");
}

/** Pure: the service spec (long-running, backoff restarts, logs in the ring). */
export function myceliumService(
  m: NonNullable<VmConfig["mycelium"]>,
  via?: Launcher | null,
): ServiceSpec {
  return v.parse(ServiceSpecSchema, {
    exec: myceliumExec(m, via),
    log: "ring",
    shutdown_timeout: 5,
    restart: { delay: 500, max_delay: 10_000, limit: 0 },
  });
}

/**
 * Pure: whether a binary with interpreter `interp` needs the private loader:
 * only when it names one the rootfs lacks and the private loader is there.
 */
export function launcherFor(
  interp: string | null,
  exists: (path: string) => boolean,
): Launcher | null {
  if (!interp || exists(interp) || !exists(LAYOUT.privateLoader)) return null;
  return { loader: LAYOUT.privateLoader, libraryPath: LAYOUT.dir };
}

/** Reads the binary's headers and decides how to start it (null: as is, also when unreadable). */
export function binaryLauncher(binary: string): Launcher | null {
  const head = new Uint8Array(64 * 1024);
  let n = 0;
  let fd = -1;
  try {
    fd = openSync(binary, "r");
    n = readSync(fd, head, 0, head.length, 0);
  } catch {
    return null; // missing now: the supervisor's exec error says so
  } finally {
    if (fd >= 0) closeSync(fd);
  }
  const interp = elfInterpreter(head.subarray(0, n));
  const via = launcherFor(interp, existsSync);
  if (via)
    log.info(
      "mycelium",
      `${binary} needs ${interp}, which this rootfs lacks: started through ${via.loader}`,
    );
  return via;
}

const IFA_F_TENTATIVE = 0x40;
const IFA_F_DADFAILED = 0x08;
const SCOPE_LINK = 0x20;

/**
 * Pure: the interfaces of /proc/net/if_inet6 that still have a tentative
 * address other than link-local (duplicate address detection running; a
 * failed one never ends and is not waited for).
 */
export function dadPending(ifInet6: string): string[] {
  const pending = new Set<string>();
  for (const line of ifInet6.split("\n")) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6) continue;
    const scope = Number.parseInt(f[3] as string, 16);
    const flags = Number.parseInt(f[4] as string, 16);
    if (scope !== SCOPE_LINK && flags & IFA_F_TENTATIVE && !(flags & IFA_F_DADFAILED))
      pending.add(f[5] as string);
  }
  return [...pending];
}

/**
 * Calls `start` once no interface has a tentative address (checked every
 * `everyMs`), or after `maxWaitMs` anyway with a warning. Never blocks the boot.
 */
export function startAfterDad(start: () => void, maxWaitMs = 10_000, everyMs = 100): void {
  const t0 = Date.now();
  const check = () => {
    let pending: string[] = [];
    try {
      pending = dadPending(readFileSync("/proc/net/if_inet6", "utf8"));
    } catch {
      pending = []; // no IPv6: nothing to wait for
    }
    const waited = Date.now() - t0;
    if (pending.length && waited < maxWaitMs) {
      setTimeout(check, everyMs);
      return;
    }
    if (pending.length)
      log.warn(
        "mycelium",
        `${pending.join(", ")}: address still tentative after ${waited} ms; starting anyway`,
      );
    else if (waited > 0) log.info("mycelium", `IPv6 addresses usable after ${waited} ms: starting`);
    start();
  };
  check();
}

/**
 * Runs mycelium from [mycelium] unless a service file of that name exists
 * (yours wins): makes the key's directory (0700; mycelium writes a key there
 * when none exists), picks how to start the binary, and starts it once the
 * addresses are usable.
 */
export function startMycelium(
  sup: Pick<Supervisor, "has" | "monitor">,
  m: NonNullable<VmConfig["mycelium"]>,
): void {
  if (sup.has(MYCELIUM_SERVICE)) return;
  try {
    mkdirSync(dirname(m.key_file), { recursive: true, mode: 0o700 });
  } catch (e) {
    log.warn("mycelium", `${dirname(m.key_file)}: ${(e as Error).message}`);
  }
  startAfterDad(() => {
    if (!sup.has(MYCELIUM_SERVICE))
      sup.monitor(MYCELIUM_SERVICE, myceliumService(m, binaryLauncher(m.binary)));
  });
}
