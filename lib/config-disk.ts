/**
 * The config disk (pure): its label, its layout and the checks every entry
 * passes before the guest copies it. The disk is hostile input: only
 * regular files in the three known places, with plain names, within size
 * and count limits, are taken; everything else is refused by name.
 *
 *   vm.toml              the VM's config (UTF-8)
 *   services/<name>.yaml zinit service files
 *   secrets/<name>       secrets, copied to /run/hero-init/secrets/<name> at 0600
 *   lost+found/          (made by mke2fs; ignored)
 */

/** The filesystem label hero-init looks for. */
export const CONFIG_DISK_LABEL = "HEROCFG";

/** Bounds on what the guest copies off the disk. */
export const CONFIG_DISK_LIMITS = {
  /** Files taken in all (the rest is refused). */
  maxFiles: 256,
  /** Bytes of one file. */
  maxFileBytes: 1024 * 1024,
  /** Bytes of all files together. */
  maxTotalBytes: 16 * 1024 * 1024,
} as const;

/** The directories on the disk and what they hold. */
export const CONFIG_DISK_DIRS = ["services", "secrets"] as const;
/** Which directory, if any, an entry is in. */
export type ConfigDiskDir = (typeof CONFIG_DISK_DIRS)[number];

/** A plain file name: no leading dot, no slash, no control characters. */
const NAME_RE = /^[A-Za-z0-9_@][A-Za-z0-9_.@-]{0,127}$/;

/** What lstat says of an entry (a subset of node's Stats). */
export interface EntryStat {
  isFile: boolean;
  isDirectory: boolean;
  size: number;
}

/** Pure: a name for messages (control characters escaped, length capped). */
export function showName(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is escaped
  const s = JSON.stringify(name.replace(/[\x00-\x1f\x7f]/g, "?"));
  return s.length > 80 ? `${s.slice(0, 77)}…"` : s;
}

/**
 * Pure: why a top-level entry is refused, or null when it is taken (vm.toml,
 * services/, secrets/). lost+found is refused silently ("").
 */
export function checkTopEntry(name: string, st: EntryStat): string | null {
  if (name === "lost+found" && st.isDirectory) return "";
  if (name === "vm.toml") return checkFile("vm.toml", st);
  if ((CONFIG_DISK_DIRS as readonly string[]).includes(name)) {
    return st.isDirectory ? null : `${name}: not a directory`;
  }
  return `${showName(name)}: not part of the config disk layout (vm.toml, services/, secrets/)`;
}

/** Pure: why a file in `dir` is refused, or null when it is taken. */
export function checkDirEntry(dir: ConfigDiskDir, name: string, st: EntryStat): string | null {
  const shown = `${dir}/${showName(name)}`;
  if (!NAME_RE.test(name))
    return `${shown}: bad name (letters, digits, _ . @ - only, no leading dot)`;
  if (dir === "services" && !name.endsWith(".yaml"))
    return `${shown}: a service file must end in .yaml`;
  return checkFile(`${dir}/${name}`, st);
}

function checkFile(shown: string, st: EntryStat): string | null {
  if (!st.isFile) return `${shown}: not a regular file (symlinks, devices, FIFOs are refused)`;
  if (st.size > CONFIG_DISK_LIMITS.maxFileBytes)
    return `${shown}: ${st.size} bytes, more than the ${CONFIG_DISK_LIMITS.maxFileBytes} allowed`;
  return null;
}

/** Running totals: why one more file of `size` bytes is refused, or null. */
export function checkBudget(
  used: { files: number; bytes: number },
  size: number,
  shown: string,
): string | null {
  if (used.files + 1 > CONFIG_DISK_LIMITS.maxFiles)
    return `${shown}: more than ${CONFIG_DISK_LIMITS.maxFiles} files on the config disk`;
  if (used.bytes + size > CONFIG_DISK_LIMITS.maxTotalBytes)
    return `${shown}: the config disk holds more than ${CONFIG_DISK_LIMITS.maxTotalBytes} bytes`;
  return null;
}

/** Pure: the vm.toml text, or why it is refused (not UTF-8, a NUL byte). */
export function decodeVmToml(bytes: Uint8Array): { text: string } | { error: string } {
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    if (text.includes("\0")) return { error: "vm.toml: contains a NUL byte" };
    return { text };
  } catch {
    return { error: "vm.toml: not valid UTF-8" };
  }
}
