/**
 * deployVm: one call from a template (or an existing rootfs) to a bootable
 * VM: the rootfs with hero-init, the manifest's `[vm]` binaries, services
 * and the per-VM config (with a fresh agent token), the kernel's modules,
 * and for an ext4 disk a small boot initramfs that switches root into it.
 * Returns everything `hero-init vm run` (or a hypervisor) needs.
 */

import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { HeroError } from "../lib/errors.ts";
import { BASE_MODULES, ROOT_MODULES } from "../lib/kernel-modules.ts";
import { LAYOUT } from "../lib/layout.ts";
import { addressOfKey, generateKey } from "../lib/mycelium.ts";
import { parseToml } from "../lib/toml.ts";
import { stringifyToml } from "../lib/toml-stringify.ts";
import { type VmConfigInput, validateVmConfig } from "../lib/vm-config.ts";
import { writeBootInitramfs, writeSwitchRootInitramfs } from "./boot-initramfs.ts";
import { buildConfigDisk, secretsForConfigDisk } from "./config-disk.ts";
import { type FormatName, type InjectReport, inject } from "./inject.ts";
import { ensureKernel, type Kernel } from "./kernel.ts";
import { buildTemplate, loadTemplate } from "./templates.ts";
import { withDefaultMycelium } from "./vm-mycelium.ts";
import { ensureVolumeImages, type VolumeImage } from "./volumes.ts";

/** Inputs of {@link deployVm}. */
export interface DeployVmOptions {
  /** A template name (rootfs-templates/<name>) … */
  template?: string;
  /** … or an existing rootfs to inject into, in place. */
  rootfs?: { path: string; format: FormatName };
  /** Output format when building from a template. */
  format?: "initramfs" | "ext4";
  /** Output directory (image, boot initramfs, deployment.json). */
  out: string;
  manifest?: string;
  /** The VM's config (merged over the template's vm.toml). */
  vm?: VmConfigInput;
  services?: Record<string, string>;
  kernel?: Kernel;
  /** ext4 only: mount the disk read-only under a tmpfs overlay. */
  overlay?: boolean;
  /**
   * ext4 only: the boot initramfs. "preinit" (default without overlay): ~1 MB, the
   * pre-init mounts the disk and execs its init (host/boot-initramfs.ts); "hero-init"
   * (always with overlay): hero-init switches root, and stays in the initramfs if it cannot.
   */
  bootInitramfs?: "preinit" | "hero-init";
  cacheDir?: string;
  mtime?: number;
  /**
   * Job VMs: the short-lived token, written 0600 to the VM's `[job]
   * secret_file` (default /etc/hero-init/job.secret); PID 1 moves it to
   * /run and deletes it once the job has read it. Never put in deployment.json.
   */
  jobSecret?: Uint8Array;
  /** false: no mycelium by default (see host/vm-mycelium.ts); a `[mycelium]` in vm.toml still counts. */
  mycelium?: boolean;
  /**
   * Put vm.toml, the services and the secrets on a config disk
   * (<out>/config.ext4, label HEROCFG) instead of into the rootfs, which then
   * holds nothing per VM (docs/images.md).
   */
  configDisk?: boolean;
  progress?: (msg: string) => void;
}

/** What deployVm returns (also written to <out>/deployment.json). */
export interface Deployment {
  format: "initramfs" | "ext4" | "dir";
  /** The rootfs image (an initramfs file, an ext4 image or a directory). */
  image: string;
  /** The initramfs to boot with (the image itself for initramfs, the switch-root initramfs for ext4). */
  initrd: string;
  disk: string | null;
  /** The config disk (attach after the root disk), when deployed with one. */
  configDisk?: string | null;
  /** Volume images deploy_vm made or kept (attach after the config disk). */
  volumes?: VolumeImage[];
  kernel: { vmlinuz: string; version: string };
  kernelCmdline: string;
  agentToken: string;
  /** Where the one-time UI password was written (0600), when deploy generated it; null if the config had a hash. */
  uiPasswordFile: string | null;
  /** The UI's URL on the mycelium address: known before boot once mycelium lands (null until then). */
  uiUrl: string | null;
  myceliumAddress: string | null;
  report: { changed: number; privateLoader: boolean; notes: string[] };
}

/** Pure: template vm.toml text + the caller's config → one validated TOML text. */
export function mergeVmConfig(templateToml: string, vm: VmConfigInput | undefined): string {
  const base = templateToml ? parseToml(templateToml, "template vm.toml") : {};
  const merged: Record<string, unknown> = { ...base, ...(vm ?? {}) };
  const mods = new Set([
    ...((base.modules as string[]) ?? []),
    ...((vm?.modules as string[]) ?? []),
  ]);
  if (mods.size) merged.modules = [...mods];
  const { errors } = validateVmConfig(merged, "vm config");
  if (errors.length) throw errors[0] as HeroError;
  return stringifyToml(merged);
}

/** Builds a VM: see the module comment. Throws HeroError on bad input, before writing the image. */
export async function deployVm(o: DeployVmOptions): Promise<Deployment> {
  if (!!o.template === !!o.rootfs)
    throw new HeroError("deploy", "give exactly one of template or rootfs");
  const out = resolve(o.out);
  const tpl = o.template ? loadTemplate(o.template) : null;
  let vmToml = mergeVmConfig(tpl?.vmToml ?? "", o.vm);
  if (o.jobSecret) {
    // Checked before anything is written: a secret with nowhere to go is bad input.
    const job = validateVmConfig(parseToml(vmToml, "vm.toml"), "vm.toml").config.job;
    if (!job)
      throw new HeroError("job", "a job secret was given but vm.toml has no [job] section", {
        field: "job",
      });
    if (!job.secret_file)
      throw new HeroError(
        "job",
        'a job secret was given but [job] has no secret_file (e.g. "/etc/hero-init/job.secret")',
        { field: "job.secret_file" },
      );
  }
  mkdirSync(out, { recursive: true });
  const kernel = o.kernel ?? (await ensureKernel());
  // No UI password given: make a one-time one. Only its hash goes into the VM;
  // the password itself is written 0600 next to the image for the operator.
  let uiPasswordFile: string | null = null;
  const raw = parseToml(vmToml, "vm.toml");
  const ui = (raw.ui ?? {}) as Record<string, unknown>;
  if (!ui.password_hash) {
    const pw = randomBytes(15).toString("base64url");
    raw.ui = { ...ui, password_hash: await Bun.password.hash(pw, { algorithm: "argon2id" }) };
    vmToml = stringifyToml(raw);
    uiPasswordFile = join(out, "ui-password");
    writeFileSync(uiPasswordFile, `${pw}\n`, { mode: 0o600 });
  }
  vmToml = withDefaultMycelium(vmToml, o.manifest, o.mycelium === false, o.progress);
  const cfg = validateVmConfig(parseToml(vmToml, "vm.toml"), "vm.toml").config;
  // A config disk or volumes need the disk modules in the image.
  const diskMods = o.configDisk || cfg.volumes.length ? ROOT_MODULES : [];
  const modules = [
    ...new Set([...BASE_MODULES, ...cfg.modules, ...(cfg.mycelium ? ["tun"] : []), ...diskMods]),
  ];
  const agentToken = randomBytes(32).toString("hex");
  const secrets: Record<string, Uint8Array> = {
    [LAYOUT.agentToken]: new TextEncoder().encode(`${agentToken}\n`),
  };
  if (o.jobSecret && cfg.job?.secret_file) secrets[cfg.job.secret_file] = o.jobSecret;
  if (cfg.ssh_authorized_keys.length) {
    secrets["/root/.ssh/authorized_keys"] = new TextEncoder().encode(
      `${cfg.ssh_authorized_keys.join("\n")}\n`,
    );
  }
  // mycelium: the key is made here (and kept in <out> so a re-deploy keeps the address),
  // so the VM's overlay address and UI URL are known before it boots.
  let myceliumAddress: string | null = null;
  if (cfg.mycelium) {
    const keyFile = join(out, "mycelium.key");
    const key = existsSync(keyFile) ? new Uint8Array(readFileSync(keyFile)) : generateKey();
    if (!existsSync(keyFile)) writeFileSync(keyFile, key, { mode: 0o600 });
    secrets[cfg.mycelium.key_file] = key;
    myceliumAddress = addressOfKey(key);
  }
  let configDisk: string | null = null;
  if (o.configDisk) {
    const moved = secretsForConfigDisk(parseToml(vmToml, "vm.toml"), secrets);
    configDisk = join(out, "config.ext4");
    buildConfigDisk(configDisk, {
      vmToml: stringifyToml(moved.raw),
      services: o.services,
      secrets: moved.secrets,
    });
    o.progress?.(`config disk: ${configDisk}`);
  }
  const volumes = ensureVolumeImages(out, cfg.volumes, o.progress);
  const common = {
    manifest: o.manifest,
    // The config files of [update] env, also when vm.toml goes on a config disk.
    env: cfg.update?.env,
    vmConfig: configDisk ? undefined : vmToml,
    services: configDisk ? undefined : o.services,
    secrets: configDisk ? {} : secrets,
    kernelModules: { dir: kernel.modulesDir, names: modules },
    cacheDir: o.cacheDir,
    mtime: o.mtime,
    progress: o.progress,
  };
  const format = o.rootfs ? o.rootfs.format : (o.format ?? "initramfs");
  let image: string;
  let report: InjectReport;
  if (tpl) {
    image = join(out, format === "ext4" ? "rootfs.ext4" : "rootfs.cpio");
    report = await buildTemplate(tpl.name, format as "initramfs" | "ext4", image, common);
  } else {
    const r = o.rootfs as { path: string; format: FormatName };
    if (!existsSync(r.path)) throw new HeroError("deploy", `${r.path} does not exist`);
    image = resolve(r.path);
    report = await inject({ ...common, format: r.format, target: image });
  }
  let initrd = image;
  let disk: string | null = null;
  let cmdline = "";
  if (format === "ext4") {
    initrd = join(out, "boot.cpio");
    // Faster boot, less RAM (docs/benchmarks.md): the pre-init alone mounts root= and execs it.
    if (!o.overlay && o.bootInitramfs !== "hero-init") await writeBootInitramfs(initrd, kernel);
    else await writeSwitchRootInitramfs(initrd, kernel, o.mtime);
    disk = image;
    cmdline = `root=/dev/vda rw${o.overlay ? " hero.overlay=tmpfs" : ""}`;
  } else if (format === "dir") {
    throw new HeroError(
      "deploy",
      "a directory rootfs cannot be booted directly: build an initramfs or ext4 image from it",
    );
  }
  const d: Deployment = {
    format: format as Deployment["format"],
    image,
    initrd,
    disk,
    configDisk,
    volumes,
    kernel: { vmlinuz: kernel.vmlinuz, version: kernel.version },
    kernelCmdline: cmdline,
    agentToken,
    uiPasswordFile,
    uiUrl: myceliumAddress ? `http://[${myceliumAddress}]:${cfg.ui.port}/` : null,
    myceliumAddress,
    report: { changed: report.changed, privateLoader: report.privateLoader, notes: report.notes },
  };
  writeFileSync(join(out, "deployment.json"), `${JSON.stringify(d, null, 2)}\n`, { mode: 0o600 });
  return d;
}
