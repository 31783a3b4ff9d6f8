/**
 * A machine's identity (seed 001: "farmerid … a value in zos we can
 * query", the farming pool, the registrars to connect to, a description for
 * operators): `[identity]` in a node's update.toml or a VM's vm.toml, shown
 * by the UI (/api/v1/identity, the status page) and `hero-init status`.
 * Pure: the schema and its display.
 */
import * as v from "valibot";

const Id = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 32 - 1));

/** `[identity]`. */
export const IdentitySchema = v.strictObject({
  farmer_id: v.optional(Id),
  farming_pool_id: v.optional(Id),
  /** Registrar URLs this machine registers with. */
  registrars: v.optional(
    v.array(
      v.pipe(
        v.string(),
        v.url("must be a URL"),
        v.regex(/^https?:\/\/[\x21-\x7e]+$/, "must be an http(s) URL without spaces"),
        v.maxLength(2048, "must be at most 2048 bytes"),
      ),
    ),
    [],
  ),
  /** Free text for operators (one line shown as is, escaped by the UI). */
  description: v.optional(
    v.pipe(
      v.string(),
      v.maxLength(1024, "must be at most 1024 bytes"),
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
      v.regex(/^[^\x00-\x1f\x7f]*$/, "must be one line without control characters"),
    ),
  ),
});

/** A validated identity. */
export type Identity = v.InferOutput<typeof IdentitySchema>;

/** Pure: `label: value` lines of an identity, for `hero-init status` (none → one line saying so). */
export function identityLines(id: Identity | undefined): string[] {
  if (!id) return ["identity: none ([identity] not configured)"];
  const out: string[] = [];
  if (id.farmer_id !== undefined) out.push(`farmer id: ${id.farmer_id}`);
  if (id.farming_pool_id !== undefined) out.push(`farming pool id: ${id.farming_pool_id}`);
  if (id.registrars.length) out.push(`registrars: ${id.registrars.join(", ")}`);
  if (id.description !== undefined) out.push(`description: ${id.description}`);
  return out.length ? out : ["identity: empty"];
}
