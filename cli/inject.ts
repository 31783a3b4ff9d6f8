/**
 * `hero-init inject`: the host injector's CLI. Prints the plan with
 * --dry-run, a JSON report with --json; bad input → one clear line, exit 2
 * (cli/run.ts), target untouched.
 */

import { readFileSync } from "node:fs";
import { type ArgsDef, defineCommand } from "citty";
import { FORMATS, type FormatName, inject as injectRootfs } from "../host/inject.ts";
import { formatPlan, planJson } from "../host/plan.ts";
import type { Command } from "./run.ts";

const args = {
  format: { type: "enum", options: [...FORMATS], required: true, description: "rootfs format" },
  rootfs: {
    type: "string",
    required: true,
    description: "the rootfs: directory, ext4 image or initramfs file",
  },
  manifest: { type: "string", description: "bootstrapper.toml whose [vm] binaries are installed" },
  "vm-config": { type: "string", description: "vm.toml to write as /etc/hero-init/vm.toml" },
  services: { type: "string", description: "directory of zinit service files (*.yaml)" },
  "hero-init": { type: "string", description: "hero-init binary (default: this one)" },
  preinit: { type: "string", description: "pre-init binary (default: next to hero-init)" },
  "kernel-modules": {
    type: "string",
    description: "host lib/modules/<version> to copy modules from",
  },
  modules: { type: "string", description: "comma-separated module names (with --kernel-modules)" },
  "private-loader": {
    type: "enum",
    options: ["auto", "always", "never"],
    default: "auto",
    description: "ship glibc's loader privately",
  },
  "dry-run": { type: "boolean", description: "print the plan; change nothing" },
  json: { type: "boolean", description: "JSON output" },
} satisfies ArgsDef;

const injectCommand = defineCommand({
  meta: {
    name: "inject",
    description: "write hero-init, binaries, services and the VM config into a rootfs",
  },
  args,
  async run({ args: a }) {
    const tty = process.stderr.isTTY;
    const report = await injectRootfs({
      format: a.format as FormatName,
      target: a.rootfs,
      manifest: a.manifest,
      vmConfig: a["vm-config"] ? readFileSync(a["vm-config"], "utf8") : undefined,
      services: a.services,
      heroInit: a["hero-init"],
      preinit: a.preinit,
      kernelModules: a["kernel-modules"]
        ? { dir: a["kernel-modules"], names: (a.modules ?? "").split(",").filter(Boolean) }
        : undefined,
      privateLoader: a["private-loader"] as "auto" | "always" | "never",
      dryRun: a["dry-run"],
      progress: a.json ? undefined : (m) => process.stderr.write(tty ? `\r\x1b[K${m}` : `${m}\n`),
    });
    if (tty && !a.json) process.stderr.write("\r\x1b[K");
    if (a.json) {
      process.stdout.write(`${JSON.stringify({ ...report, plan: planJson(report.plan) })}\n`);
      return;
    }
    if (report.dryRun) process.stdout.write(`${formatPlan(report.plan)}\n`);
    for (const n of report.notes) process.stdout.write(`note: ${n}\n`);
    process.stdout.write(
      report.dryRun
        ? `dry run: ${report.plan.length} entries planned for ${report.target}; nothing written\n`
        : `${report.target}: ${report.changed} entries written (${report.format}${report.privateLoader ? ", private loader" : ""})\n`,
    );
  },
});

/** `hero-init inject`. */
export const inject: Command = injectCommand;
