/**
 * Every path a VM has that hero-init writes or reads, defined once. The host
 * injector writes to these paths and the guest runtime reads them, so both
 * import this module (and neither imports the other for a path).
 */

/** hero-init's private directory: its binary, the pre-init, the exec helper,
 *  a private glibc loader and libraries when the image has none, packages. */
const PRIVATE_DIR = "/usr/lib/hero";
const CONFIG_DIR = "/etc/hero-init";

/** Where things are in the guest. */
export const LAYOUT = {
  dir: PRIVATE_DIR,
  heroInit: `${PRIVATE_DIR}/hero-init`,
  preinit: `${PRIVATE_DIR}/preinit`,
  /** The exec helper (a link to the pre-init binary; see guest/preinit). */
  execHelper: `${PRIVATE_DIR}/hero-exec`,
  /** The private glibc loader, when the rootfs has no usable glibc. */
  privateLoader: `${PRIVATE_DIR}/ld.so`,
  /** Versioned `[vm]` binaries: pkgs/<name>/<version>/… behind switchable links. */
  pkgs: `${PRIVATE_DIR}/pkgs`,
  sbinInit: "/sbin/init",
  /** An existing /sbin/init is renamed to this, never destroyed. */
  sbinInitAside: "/sbin/init.before-hero",
  initramfsInit: "/init",
  binHeroInit: "/usr/bin/hero-init",
  binZinit: "/usr/bin/zinit",
  configDir: CONFIG_DIR,
  /** The per-VM config (may hold secrets: 0600 root). */
  vmConfig: `${CONFIG_DIR}/vm.toml`,
  /** The guest agent's per-VM token (hex + newline, 0600 root). */
  agentToken: `${CONFIG_DIR}/agent.token`,
  /** zinit service files. */
  services: "/etc/zinit",
  modules: "/lib/modules",
  /** File name, in modules/<kernel version>/, of the injector's module load order (lib/kernel-modules.ts). */
  moduleLoadOrder: "hero-load-order",
  /** The mycelium key (persisted: the address survives reboots). */
  myceliumKey: "/var/lib/mycelium/key.bin",
  /** The updater's state (installed versions, pending confirmation). */
  updateState: "/var/lib/hero-init/update",
  /** The job runner's default directory. */
  jobRunner: "/var/lib/hero-job/runner",
  /** The job secret while the job starts (tmpfs). */
  jobSecret: "/run/hero-job/secret",
  /** The agent behind the vsock listener (root only). */
  agentSocket: "/run/hero-init/agent.sock",
  /** Per-service NOTIFY_SOCKET datagram sockets (`notify: true` services). */
  notifyDir: "/run/hero-init/notify",
  /** What hero-init copied off the config disk (vm.toml, services/), tmpfs, 0700. */
  configDiskCopy: "/run/hero-init/config-disk",
  /** Where the config disk is mounted (read-only) while it is copied; unmounted after. */
  configDiskMount: "/run/hero-init/config-disk.mnt",
  /** Secrets from the config disk, one 0600 file each (tmpfs, dir 0700). */
  secretsDir: "/run/hero-init/secrets",
  /** What a re-exec of PID 1 hands to the new binary. */
  handoff: "/run/hero-init/handoff.json",
  /** zinit's control socket paths: the legacy default and the newer one. */
  zinitSockets: ["/var/run/zinit.sock", "/tmp/zinit.sock"],
} as const;

/** Paths on a node (a host that `hero-init install` set up). */
export const NODE_LAYOUT = {
  /** The node's update config. */
  updateConfig: `${CONFIG_DIR}/update.toml`,
} as const;
