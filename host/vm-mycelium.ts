/**
 * mycelium on every VM by default (seed 000's definition of done: "every VM
 * has zinit as PID 1 + mycelium IPv6"). When the manifest's `[vm]` section
 * ships mycelium and the VM's config has no `[mycelium]`, deployVm adds one
 * (the binary where the manifest installs it, default peers none, the key
 * deploy generates), unless the operator opts out (`deploy --no-mycelium`,
 * DeployVmOptions.mycelium = false). {@link defaultMycelium} is pure.
 */
import { readFileSync } from "node:fs";
import { type Manifest, parseManifest } from "../lib/manifest.ts";
import { parseToml } from "../lib/toml.ts";
import { stringifyToml } from "../lib/toml-stringify.ts";

/** What {@link defaultMycelium} decided, for the deploy report. */
export interface MyceliumDefault {
  /** The VM config with `mycelium` added when it was. */
  config: Record<string, unknown>;
  /** Whether `mycelium` was added. */
  added: boolean;
  /** One line for the report's notes. */
  note: string;
}

/** Pure: the VM config with the manifest's mycelium added (see the module comment). */
export function defaultMycelium(
  config: Record<string, unknown>,
  manifest: Manifest | null,
  optOut: boolean,
): MyceliumDefault {
  if (config.mycelium !== undefined)
    return { config, added: false, note: "mycelium: as vm.toml configures it" };
  if (optOut) return { config, added: false, note: "mycelium: left out (opted out)" };
  const bin = manifest?.vm.binaries.find((b) => b.name === "mycelium");
  if (!bin)
    return {
      config,
      added: false,
      note: "mycelium: none (the manifest ships no [vm] mycelium; the VM has no overlay address)",
    };
  const binary = bin.path ?? "/usr/bin/mycelium";
  return {
    config: { ...config, mycelium: { binary } },
    added: true,
    note: `mycelium: added by default (${binary} ${bin.version}, a generated key)`,
  };
}

/** deployVm's step: vm.toml text (and the manifest file) in, vm.toml text out; the decision goes to `progress`. */
export function withDefaultMycelium(
  vmToml: string,
  manifestFile: string | undefined,
  optOut: boolean,
  progress?: (msg: string) => void,
): string {
  const m = manifestFile ? parseManifest(readFileSync(manifestFile, "utf8"), manifestFile) : null;
  const r = defaultMycelium(parseToml(vmToml, "vm.toml"), m, optOut);
  progress?.(r.note);
  return r.added ? stringifyToml(r.config) : vmToml;
}
