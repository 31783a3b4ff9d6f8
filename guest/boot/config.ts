/**
 * Boot step 4: read /etc/hero-init/vm.toml, apply `hero.*` and `ip=` kernel
 * parameters, validate. Every problem goes to the console with file, line and
 * field; the VM boots with safe defaults for whatever was wrong.
 */

import { existsSync, readFileSync } from "node:fs";
import { HeroError, isHeroError } from "../../lib/errors.ts";
import { LAYOUT } from "../../lib/layout.ts";
import { log } from "../../lib/log.ts";
import { parseToml } from "../../lib/toml.ts";
import { type LoadedVmConfig, validateVmConfig } from "../../lib/vm-config.ts";
import { applyCmdlineOverrides } from "./cmdline.ts";
import type { BootStep } from "./context.ts";

/** Pure: config text (null if the file is absent) + kernel parameters → config and errors. */
export function resolveBootConfig(
  text: string | null,
  file: string,
  params: Map<string, string>,
): LoadedVmConfig {
  const errors: HeroError[] = [];
  let raw: Record<string, unknown> = {};
  if (text !== null) {
    try {
      raw = parseToml(text, file);
    } catch (e) {
      errors.push(isHeroError(e, "input") ? e : new HeroError("toml-syntax", String(e), { file }));
    }
  }
  for (const p of applyCmdlineOverrides(raw, params)) {
    errors.push(new HeroError("cmdline", p, { file: "/proc/cmdline" }));
  }
  const loaded = validateVmConfig(raw, file, text ?? "");
  return { config: loaded.config, errors: [...errors, ...loaded.errors] };
}

/**
 * Pure: which vm.toml the config step reads. Kernel arguments win
 * (`hero.config=` picks the file; `hero.*` fields override it later), then
 * the config disk's vm.toml, then the one in the rootfs.
 */
export function chooseVmConfigFile(
  cmdlineFile: string | undefined,
  diskFile: string | null | undefined,
  rootfsFile: string,
): string {
  return cmdlineFile || diskFile || rootfsFile;
}

/**
 * The config disk's copies on tmpfs (guest/boot/config-disk.ts), found by
 * path rather than passed in the context, so a self-update re-exec (which
 * runs only the config step again) still reads them.
 */
function copied(name: string): string | null {
  const p = `${LAYOUT.configDiskCopy}/${name}`;
  return existsSync(p) ? p : null;
}

/** The config disk's vm.toml copy, or null. */
const configDiskVmToml = () => copied("vm.toml");

/** The services directory made from the config disk (rootfs services + the disk's), or null. */
export const configDiskServicesDir = () => copied("services");

/** The config step. */
export const configStep: BootStep = {
  name: "config",
  run(ctx) {
    // kernel arguments > config disk > rootfs (docs/images.md)
    const file = chooseVmConfigFile(
      ctx.cmdline.get("hero.config"),
      configDiskVmToml(),
      LAYOUT.vmConfig,
    );
    let text: string | null = null;
    try {
      text = readFileSync(file, "utf8");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") log.info("config", `${file} not found: using defaults`);
      else log.error("config", `${file}: ${(e as Error).message}: using defaults`);
    }
    const { config, errors } = resolveBootConfig(text, file, ctx.cmdline);
    const diskServices = configDiskServicesDir();
    if (diskServices) config.services.dir = diskServices;
    ctx.config = config;
    ctx.configErrors = errors;
    for (const err of errors) log.error("config", `CONFIG ERROR ${err.toString()}`);
    log.info(
      "config",
      `hostname=${config.hostname} interfaces=${config.network.interfaces.length} modules=${config.modules.length}`,
    );
  },
};
