/** Writing TOML (the injector's configs, manifests): apart from lib/toml.ts, which PID 1 loads to read vm.toml. */
import type { JsonMap } from "@iarna/toml";
import stringifyTomlValue from "@iarna/toml/stringify.js";

/** Serialises a plain object as TOML (used by the injector to write configs). */
export function stringifyToml(value: Record<string, unknown>): string {
  return stringifyTomlValue(value as JsonMap);
}
