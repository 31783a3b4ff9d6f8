/**
 * Boot step (initramfs only): when the kernel command line has `root=`,
 * hero-init in the initramfs loads the disk modules, mounts the root
 * filesystem (optionally as the lower layer of an overlay with a tmpfs upper
 * layer: `hero.overlay=tmpfs`), frees the initramfs, moves /dev, /proc, /sys
 * and /run over, switches root and execs the disk's /sbin/init — the
 * pre-init and hero-init of the disk, again as PID 1. If anything fails the
 * VM keeps booting from the initramfs, with the reason on the console.
 */
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { ROOT_MODULES } from "../../lib/kernel-modules.ts";
import { log } from "../../lib/log.ts";
import { chroot, MNT, MS, mount, umount } from "../../sys/ffi.ts";
import type { BootStep } from "./context.ts";
import { loadModules } from "./modules.ts";

const NEW_ROOT = "/newroot";

/** Pure: the root options from the command line, or null when there is no root=. */
export function rootOptions(
  params: Map<string, string>,
):
  | { device: string; fstype: string; readonly: boolean; overlay: boolean; init: string }
  | { error: string }
  | null {
  const device = params.get("root");
  if (!device) return null;
  if (!device.startsWith("/dev/"))
    return {
      error: `root=${device}: only /dev/… paths are supported (no udev in the initramfs for LABEL=/UUID=)`,
    };
  return {
    device,
    fstype: params.get("rootfstype") || "ext4",
    readonly: params.has("ro") && !params.has("rw"),
    overlay: params.get("hero.overlay") === "tmpfs",
    init: params.get("hero.rootinit") || "/sbin/init",
  };
}

/** Pure: true when mountinfo says "/" is the initramfs (rootfs, ramfs or tmpfs). */
export function rootIsInitramfs(mountinfo: string): boolean {
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f[4] !== "/") continue;
    const fstype = f[f.indexOf("-") + 1];
    return fstype === "rootfs" || fstype === "ramfs" || fstype === "tmpfs";
  }
  return false;
}

async function waitFor(path: string, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (existsSync(path)) return true;
    await Bun.sleep(25);
  }
  return false;
}

/** Deletes the initramfs's files (same device as "/"), keeping mount points: frees its RAM. */
function freeInitramfs(dir: string, dev: number): void {
  for (const name of readdirSync(dir)) {
    const p = dir === "/" ? `/${name}` : `${dir}/${name}`;
    if (p === NEW_ROOT) continue;
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.dev !== dev) continue; // a mount point (/dev, /proc…): not ours to delete
    try {
      if (st.isDirectory()) {
        freeInitramfs(p, dev);
        rmdirSync(p);
      } else unlinkSync(p);
    } catch {
      // busy or a mount point: leave it
    }
  }
}

/** The switch-root step. Returns normally only when there is nothing to do or it failed. */
export const switchRootStep: BootStep = {
  name: "switchroot",
  async run(ctx) {
    const opts = rootOptions(ctx.cmdline);
    if (!opts) return;
    if (!rootIsInitramfs(readFileSync("/proc/self/mountinfo", "utf8"))) return; // already on the real root
    if ("error" in opts) {
      log.error("switchroot", `${opts.error}; staying in the initramfs`);
      return;
    }
    loadModules(ROOT_MODULES.filter((m) => m !== "overlay" || opts.overlay));
    if (!(await waitFor(opts.device, 10_000))) {
      log.error(
        "switchroot",
        `${opts.device} did not appear within 10 s; staying in the initramfs`,
      );
      return;
    }
    mkdirSync(NEW_ROOT, { recursive: true });
    try {
      if (opts.overlay) {
        for (const d of ["/.lower", "/.rw"]) mkdirSync(d, { recursive: true });
        mount(opts.device, "/.lower", opts.fstype, MS.RDONLY);
        mount("tmpfs", "/.rw", "tmpfs", 0, "mode=0755");
        for (const d of ["/.rw/upper", "/.rw/work"]) mkdirSync(d, { recursive: true });
        mount(
          "overlay",
          NEW_ROOT,
          "overlay",
          0,
          "lowerdir=/.lower,upperdir=/.rw/upper,workdir=/.rw/work",
        );
      } else {
        mount(opts.device, NEW_ROOT, opts.fstype, opts.readonly ? MS.RDONLY : 0);
      }
    } catch (e) {
      log.error(
        "switchroot",
        `cannot mount ${opts.device} (${opts.fstype}): ${(e as Error).message}; staying in the initramfs`,
      );
      return;
    }
    if (
      !existsSync(`${NEW_ROOT}${opts.init}`) &&
      !lstatSync(`${NEW_ROOT}${opts.init}`, { throwIfNoEntry: false })
    ) {
      log.error("switchroot", `${opts.device} has no ${opts.init}; staying in the initramfs`);
      umount(NEW_ROOT, MNT.DETACH);
      return;
    }
    log.info(
      "switchroot",
      `switching to ${opts.device}${opts.overlay ? " (overlay, writes go to RAM)" : ""}, exec ${opts.init}`,
    );
    freeInitramfs("/", statSync("/").dev);
    for (const m of ["/dev", "/proc", "/sys", "/run"]) {
      try {
        mkdirSync(`${NEW_ROOT}${m}`, { recursive: true });
        mount(m, `${NEW_ROOT}${m}`, null, MS.MOVE);
      } catch (e) {
        log.warn("switchroot", `move ${m}: ${(e as Error).message}`);
      }
    }
    process.chdir(NEW_ROOT);
    mount(NEW_ROOT, "/", null, MS.MOVE);
    chroot(".");
    process.chdir("/");
    // The disk's /sbin/init is hero-init's pre-init: it execs hero-init as this same PID 1.
    (
      process as unknown as {
        execve(file: string, args: string[], env: Record<string, string | undefined>): never;
      }
    ).execve(opts.init, [opts.init], { ...process.env, HERO_SWITCHED_ROOT: "1" });
  },
};
