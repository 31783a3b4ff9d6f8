/**
 * Boot step (before config): the config disk. A virtio disk whose ext4
 * label is HEROCFG holds this VM's vm.toml, service files and secrets
 * (layout: lib/config-disk.ts). It is mounted read-only (nosuid, nodev,
 * noexec), what it holds is checked entry by entry and copied to tmpfs
 * (/run/hero-init/…, secrets 0600), and it is unmounted: nothing on it stays
 * readable in the guest. The config step then reads the copied vm.toml
 * (kernel arguments > config disk > rootfs) and the supervisor loads the
 * copied services. With no virtio disk this costs a look at sysfs.
 */
import {
  closeSync,
  constants,
  existsSync,
  fstatSync,
  lstatSync,
  mkdirSync,
  opendirSync,
  openSync,
  readdirSync,
  readSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import {
  CONFIG_DISK_LABEL,
  CONFIG_DISK_LIMITS,
  checkBudget,
  checkDirEntry,
  checkTopEntry,
  decodeVmToml,
  type EntryStat,
} from "../../lib/config-disk.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { log } from "../../lib/log.ts";
import { MNT, MS, mount, umount } from "../../sys/ffi.ts";
import { disksWithLabel, ensureVirtioDisks, loadExt4 } from "./block.ts";
import { configDiskServicesDir } from "./config.ts";
import type { BootStep } from "./context.ts";

/** Where things land: the copy's directory and the secrets' (both made 0700). */
export interface CopyTargets {
  dir: string;
  secrets: string;
}

/** What copying the disk did. */
export interface CopyResult {
  vmToml: boolean;
  services: number;
  secrets: number;
  /** One message per refused entry, naming it. */
  refused: string[];
}

function lstatOf(path: string): EntryStat | null {
  try {
    const st = lstatSync(path);
    return { isFile: st.isFile(), isDirectory: st.isDirectory(), size: st.size };
  } catch {
    return null;
  }
}

/**
 * Reads a regular file without following a link, at most `max` bytes; a
 * string says why not. The fstat after open closes the gap between lstat
 * and open.
 */
export function readBounded(path: string, max: number): Uint8Array | string {
  let fd = -1;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = fstatSync(fd);
    if (!st.isFile()) return "not a regular file";
    if (st.size > max) return `${st.size} bytes, more than the ${max} allowed`;
    const buf = new Uint8Array(max + 1);
    let got = 0;
    while (got <= max) {
      const r = readSync(fd, buf, got, max + 1 - got, null);
      if (r <= 0) break;
      got += r;
    }
    if (got > max) return `more than the ${max} bytes allowed`;
    return buf.slice(0, got);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ELOOP" ? "a symlink" : (e as Error).message;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Lists a directory, at most `max` names: read entry by entry, so a directory of a million entries costs nothing. */
function listDir(dir: string, max: number): { names: string[]; more: boolean } {
  const names: string[] = [];
  const d = opendirSync(dir);
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      if (names.length === max) return { names: names.sort(), more: true };
      names.push(e.name);
    }
  } finally {
    d.closeSync();
  }
  return { names: names.sort(), more: false };
}

/**
 * Copies a mounted config disk at `src` into `to`: vm.toml (0600),
 * services/*.yaml (0600) and secrets/* (0600), each checked; anything else
 * is refused with a message naming it. Never throws for what the disk holds.
 */
export function copyConfigTree(src: string, to: CopyTargets): CopyResult {
  const res: CopyResult = { vmToml: false, services: 0, secrets: 0, refused: [] };
  const used = { files: 0, bytes: 0 };
  const refuse = (why: string): void => {
    if (res.refused.length < 64) res.refused.push(why);
    else if (res.refused.length === 64) res.refused.push("… more entries refused");
  };
  mkdirSync(to.dir, { recursive: true, mode: 0o700 });
  /** Writes what was read to `dest` (0600) if the budget allows; false when refused. */
  const store = (rel: string, dest: string, data: Uint8Array): boolean => {
    const over = checkBudget(used, data.length, rel);
    if (over) {
      refuse(over);
      return false;
    }
    used.files++;
    used.bytes += data.length;
    writeFileSync(dest, data, { mode: 0o600 });
    return true;
  };
  const read = (rel: string) => readBounded(`${src}/${rel}`, CONFIG_DISK_LIMITS.maxFileBytes);
  const top = listDir(src, CONFIG_DISK_LIMITS.maxFiles);
  if (top.more)
    refuse(`more than ${CONFIG_DISK_LIMITS.maxFiles} entries at the top: the rest is ignored`);
  for (const name of top.names) {
    const st = lstatOf(`${src}/${name}`);
    const why = st ? checkTopEntry(name, st) : `${name}: cannot be read`;
    if (why === "") continue;
    if (why) {
      refuse(why);
      continue;
    }
    if (name === "vm.toml") {
      const data = read("vm.toml");
      const text = typeof data === "string" ? { error: `vm.toml: ${data}` } : decodeVmToml(data);
      if ("error" in text) refuse(`${text.error}: the rootfs's vm.toml is used instead`);
      else if (typeof data !== "string" && store("vm.toml", `${to.dir}/vm.toml`, data))
        res.vmToml = true;
      continue;
    }
    const dir = name as "services" | "secrets";
    const dest = dir === "services" ? `${to.dir}/services` : to.secrets;
    mkdirSync(dest, { recursive: true, mode: 0o700 });
    const sub = listDir(`${src}/${dir}`, CONFIG_DISK_LIMITS.maxFiles);
    if (sub.more)
      refuse(`${dir}/: more than ${CONFIG_DISK_LIMITS.maxFiles} entries: the rest is ignored`);
    for (const f of sub.names) {
      const rel = `${dir}/${f}`;
      const fst = lstatOf(`${src}/${rel}`);
      const bad = fst ? checkDirEntry(dir, f, fst) : `${rel}: cannot be read`;
      if (bad) {
        refuse(bad);
        continue;
      }
      const data = read(rel);
      if (typeof data === "string") refuse(`${rel}: ${data}`);
      else if (store(rel, `${dest}/${f}`, data)) res[dir]++;
    }
  }
  return res;
}

/** Copies the rootfs's service files under the disk's (the disk's win on a name). */
function mergeRootfsServices(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(LAYOUT.services).filter((f) => f.endsWith(".yaml"));
  } catch {
    return; // no services in the rootfs
  }
  for (const f of names.slice(0, CONFIG_DISK_LIMITS.maxFiles)) {
    if (existsSync(`${dir}/${f}`)) continue;
    const data = readBounded(`${LAYOUT.services}/${f}`, CONFIG_DISK_LIMITS.maxFileBytes);
    if (typeof data === "string") log.warn("configdisk", `${LAYOUT.services}/${f}: ${data}`);
    else writeFileSync(`${dir}/${f}`, data, { mode: 0o600 });
  }
}

/** Mounts `dev` read-only at the private mount point, copies it, unmounts it. */
function readDisk(dev: string): CopyResult {
  const mnt = LAYOUT.configDiskMount;
  mkdirSync(mnt, { recursive: true, mode: 0o700 });
  loadExt4();
  try {
    mount(dev, mnt, "ext4", MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
  } catch (e) {
    rmdirSync(mnt);
    throw e;
  }
  try {
    return copyConfigTree(mnt, { dir: LAYOUT.configDiskCopy, secrets: LAYOUT.secretsDir });
  } finally {
    try {
      umount(mnt);
    } catch (e) {
      log.error("configdisk", `umount ${mnt}: ${(e as Error).message}: detaching`);
      umount(mnt, MNT.DETACH);
    }
    rmdirSync(mnt);
  }
}

/** The config-disk step. */
export const configDiskStep: BootStep = {
  name: "configdisk",
  async run() {
    const disks = await ensureVirtioDisks();
    if (disks.length === 0) return;
    const found = disksWithLabel(disks, CONFIG_DISK_LABEL);
    if (found.length === 0) return;
    if (found.length > 1)
      log.warn(
        "configdisk",
        `${found.length} disks labelled ${CONFIG_DISK_LABEL}: using /dev/${found[0]}`,
      );
    const dev = `/dev/${found[0]}`;
    rmSync(LAYOUT.configDiskCopy, { recursive: true, force: true });
    const r = readDisk(dev);
    for (const why of r.refused) log.error("configdisk", `${dev}: refused ${why}`);
    const services = configDiskServicesDir();
    if (services) mergeRootfsServices(services);
    log.info(
      "configdisk",
      `${dev}: vm.toml ${r.vmToml ? "taken" : "absent"}, ${r.services} services, ${r.secrets} secrets; unmounted`,
    );
  },
};
