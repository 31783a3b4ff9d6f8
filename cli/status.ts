/**
 * `hero-init status [SERVICE]`: without a service, this machine's status
 * for operators: its identity (`[identity]`: farmer id, farming pool,
 * registrars, description), what it follows (manifest, environment), the
 * manifest version it trusts and the users its environment's access
 * section manages. Read from the node's update.toml, else the VM's vm.toml.
 * With a service it is zinit's `status SERVICE`, as before.
 */
import { existsSync, readFileSync } from "node:fs";
import { defineCommand } from "citty";
import { type Identity, identityLines } from "../lib/identity.ts";
import { LAYOUT, NODE_LAYOUT } from "../lib/layout.ts";
import { parseVmConfig } from "../lib/vm-config.ts";
import { readAccessRecord } from "../update/access.ts";
import { parseNodeUpdateConfig } from "../update/install.ts";
import { readState } from "../update/state.ts";
import type { Command } from "./run.ts";
import { zinitCommands } from "./zinit.ts";

/** What `hero-init status` shows (also its --json). */
interface MachineStatus {
  config: string | null;
  role: "node" | "vm";
  identity: Identity | null;
  manifest: string | null;
  env: string | null;
  trustedManifestVersion: number;
  managedUsers: string[];
}

/** Reads the machine's status under `root` ("" on the machine itself). */
export function machineStatus(root: string): MachineStatus {
  const nodeFile = `${root}${NODE_LAYOUT.updateConfig}`;
  const vmFile = `${root}${LAYOUT.vmConfig}`;
  const stateDir = `${root}${LAYOUT.updateState}`;
  const base = {
    trustedManifestVersion: readState(stateDir).version,
    managedUsers: Object.keys(readAccessRecord(stateDir).users).sort(),
  };
  if (existsSync(nodeFile)) {
    const c = parseNodeUpdateConfig(readFileSync(nodeFile, "utf8"), nodeFile);
    return {
      config: nodeFile,
      role: c.role,
      identity: c.identity ?? null,
      manifest: c.manifest,
      env: c.env ?? null,
      ...base,
    };
  }
  const text = existsSync(vmFile) ? readFileSync(vmFile, "utf8") : "";
  const { config, errors } = parseVmConfig(text, vmFile);
  for (const e of errors) process.stderr.write(`${String(e)}\n`);
  return {
    config: text ? vmFile : null,
    role: "vm",
    identity: config.identity ?? null,
    manifest: config.update?.manifest ?? null,
    env: config.update?.env ?? null,
    ...base,
  };
}

/** Pure: the text form. */
export function statusText(s: MachineStatus): string {
  const lines = [
    ...identityLines(s.identity ?? undefined),
    `role: ${s.role}${s.config ? ` (${s.config})` : ""}`,
    `manifest: ${s.manifest ?? "none"}${s.env ? ` (environment ${s.env})` : ""}`,
    `trusted manifest version: ${s.trustedManifestVersion || "none yet"}`,
    `managed users: ${s.managedUsers.join(", ") || "none"}`,
  ];
  return `${lines.join("\n")}\n`;
}

const statusCommand = defineCommand({
  meta: {
    name: "status",
    description:
      "this machine's identity, manifest and managed users; with SERVICE: zinit's status of that service",
  },
  args: {
    service: { type: "positional", required: false, description: "a service (zinit status)" },
    json: { type: "boolean", description: "print the result as JSON" },
    root: { type: "string", default: "", description: "read the machine under this root" },
  },
  run(ctx) {
    if (ctx.args.service)
      return (zinitCommands.status as { run: (c: unknown) => unknown }).run(ctx);
    const s = machineStatus(ctx.args.root);
    process.stdout.write(ctx.args.json ? `${JSON.stringify(s)}\n` : statusText(s));
    return 0;
  },
});

export const status = statusCommand as Command;
