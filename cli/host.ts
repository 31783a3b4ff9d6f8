/**
 * Host commands: `hero-init template build|list`, `hero-init deploy`,
 * `hero-init vm run`. Bad input → one clear line and exit 2 (cli/run.ts).
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defineCommand } from "citty";
import { type Deployment, deployVm } from "../host/deploy.ts";
import { qemuArgs } from "../host/qemu-args.ts";
import { buildTemplate, listTemplates, type TemplateFormat } from "../host/templates.ts";
import { parsePowerdownTimeout, runVm } from "../host/vm-run.ts";
import { readServiceText } from "../lib/service-file.ts";
import { parseToml } from "../lib/toml.ts";
import type { VmConfigInput } from "../lib/vm-config.ts";
import { type Command, usageError } from "./run.ts";

/** Service files of a directory: regular files only, size-limited (as the guest reads them); names kept as own keys, `__proto__` included, so the injector refuses a bad one instead of losing it. */
export function readServiceDir(dir: string): Record<string, string> {
  return Object.fromEntries(
    readdirSync(dir)
      .filter((f) => f.endsWith(".yaml"))
      .sort()
      .map((f) => [f.slice(0, -5), readServiceText(join(dir, f))]),
  );
}

const progress = (json?: boolean) =>
  json ? undefined : (m: string) => process.stderr.write(`${m}\n`);

const templateBuild = defineCommand({
  meta: {
    name: "build",
    description: "build a rootfs template with hero-init injected",
  },
  args: {
    name: {
      type: "positional",
      required: true,
      description: "template name (see: hero-init template list)",
    },
    format: { type: "enum", options: ["dir", "ext4", "initramfs"], required: true },
    out: { type: "string", required: true, description: "output path" },
    manifest: { type: "string" },
    "vm-config": { type: "string" },
    rebuild: { type: "boolean", description: "rebuild the cached base" },
    json: { type: "boolean" },
  },
  async run({ args: a }) {
    const r = await buildTemplate(a.name, a.format as TemplateFormat, a.out, {
      manifest: a.manifest,
      vmConfig: a["vm-config"] ? readFileSync(a["vm-config"], "utf8") : undefined,
      rebuild: a.rebuild,
      progress: progress(a.json),
    });
    process.stdout.write(
      a.json
        ? `${JSON.stringify({ out: a.out, changed: r.changed, privateLoader: r.privateLoader, notes: r.notes })}\n`
        : `${a.out}: template ${a.name} (${a.format})\n`,
    );
  },
});

const deployCommand = defineCommand({
  meta: {
    name: "deploy",
    description: "deploy_vm: build a bootable VM image from a template or a rootfs",
  },
  args: {
    template: { type: "string", description: "template name" },
    rootfs: {
      type: "string",
      description: "existing rootfs to inject into (with --rootfs-format)",
    },
    "rootfs-format": { type: "enum", options: ["dir", "ext4", "initramfs"] },
    format: { type: "enum", options: ["initramfs", "ext4"], default: "initramfs" },
    out: { type: "string", required: true, description: "output directory" },
    manifest: { type: "string" },
    "vm-config": { type: "string", description: "vm.toml for the VM" },
    services: { type: "string", description: "directory of zinit service files to add" },
    overlay: { type: "boolean", description: "ext4: read-only disk under a tmpfs overlay" },
    "config-disk": {
      type: "boolean",
      description:
        "put vm.toml, services and secrets on a config disk (config.ext4), not in the rootfs",
    },
    "job-secret": {
      type: "string",
      description: "job VMs: file with the short-lived token (written 0600 to [job] secret_file)",
    },
    mycelium: {
      type: "boolean",
      default: true,
      description:
        "add the manifest's [vm] mycelium with a new key when vm.toml has no [mycelium] (--no-mycelium: don't)",
    },
    json: { type: "boolean" },
  },
  async run({ args: a }) {
    const vm = a["vm-config"]
      ? (parseToml(readFileSync(a["vm-config"], "utf8"), a["vm-config"]) as VmConfigInput)
      : undefined;
    const d = await deployVm({
      template: a.template,
      rootfs: a.rootfs
        ? { path: a.rootfs, format: (a["rootfs-format"] ?? "dir") as "dir" | "ext4" | "initramfs" }
        : undefined,
      format: a.format as "initramfs" | "ext4",
      out: a.out,
      manifest: a.manifest,
      vm,
      overlay: a.overlay,
      configDisk: a["config-disk"],
      services: a.services ? readServiceDir(a.services) : undefined,
      jobSecret: a["job-secret"] ? new Uint8Array(readFileSync(a["job-secret"])) : undefined,
      mycelium: a.mycelium !== false,
      progress: progress(a.json),
    });
    if (a.json) process.stdout.write(`${JSON.stringify(d)}\n`);
    else {
      process.stdout.write(
        `image:   ${d.image}\ninitrd:  ${d.initrd}\nkernel:  ${d.kernel.vmlinuz}\ncmdline: ${d.kernelCmdline || "(none)"}\n`,
      );
      process.stdout.write(
        `agent token: in ${a.out}/deployment.json (0600)\n` +
          (d.uiPasswordFile
            ? `UI password (one-time, admin): in ${d.uiPasswordFile} (0600)\n`
            : "") +
          (d.uiUrl ? `UI (mycelium): ${d.uiUrl}\n` : "") +
          `run it:  hero-init vm run ${a.out}\n`,
      );
    }
  },
});

const vmRun = defineCommand({
  meta: {
    name: "run",
    description:
      "boot a deployment in QEMU with port forwards; Ctrl-C powers the VM off (ACPI power button), a second Ctrl-C stops it at once",
  },
  args: {
    dir: {
      type: "positional",
      required: true,
      description: "deployment directory (from hero-init deploy)",
    },
    port: {
      type: "string",
      default: "9999",
      description: "host port forwarded to the guest's :9999",
    },
    mem: { type: "string", default: "1024", description: "guest memory in MB" },
    kvm: { type: "boolean", description: "use KVM instead of TCG" },
    "powerdown-timeout": {
      type: "string",
      default: "30",
      description: "seconds the guest has to power off after Ctrl-C before QEMU is stopped",
    },
  },
  async run({ args: a }) {
    const timeout = parsePowerdownTimeout(a["powerdown-timeout"]);
    if (typeof timeout === "string") throw usageError(timeout, "--powerdown-timeout");
    const d = JSON.parse(readFileSync(join(a.dir, "deployment.json"), "utf8")) as Deployment;
    const work = mkdtempSync(join(tmpdir(), "hero-vm-"));
    const qmp = join(work, "qmp.sock");
    const args = qemuArgs({
      vmlinuz: d.kernel.vmlinuz,
      initrd: d.initrd,
      append: d.kernelCmdline,
      memMB: Number(a.mem),
      forwards: { [Number(a.port)]: 9999 },
      // root disk, config disk, volumes: the guest finds the last two by label and serial
      disks: [
        ...(d.disk ? [{ path: d.disk }] : []),
        ...(d.configDisk ? [{ path: d.configDisk }] : []),
        ...(d.volumes ?? []).map((v) => ({ path: v.path, serial: v.serial })),
      ],
      accel: a.kvm ? "kvm" : "tcg",
      serial: "stdio",
      qmpSocket: qmp,
    });
    process.stderr.write(
      `vm run: UI on http://127.0.0.1:${a.port}/ once the console says READY; Ctrl-C powers off (twice: stops at once)\n`,
    );
    try {
      return await runVm({
        argv: args,
        qmpSocket: qmp,
        powerdownTimeoutMs: timeout,
        say: (line) => process.stderr.write(`${line}\n`),
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  },
});

const templateList = defineCommand({
  meta: { name: "list", description: "the templates this host can build" },
  run() {
    for (const t of listTemplates()) process.stdout.write(`${t}\n`);
  },
});

/** `hero-init template list|build`. */
export const template: Command = {
  meta: { name: "template", description: "rootfs templates with hero-init injected" },
  subCommands: { list: templateList, build: templateBuild },
};

/** `hero-init deploy`. */
export const deploy: Command = deployCommand;

/** `hero-init vm run`. */
export const vm: Command = {
  meta: { name: "vm", description: "run a deployment in QEMU" },
  subCommands: { run: vmRun },
};
