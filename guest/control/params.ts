/**
 * A JSON-RPC method's parameters read as zinit's server (jsonrpsee) reads
 * them, pure: by position from an array, by name from an object, every
 * declared parameter in order before the method runs; a parameter that is
 * missing or of the wrong type is -32602 "Invalid params" with serde's
 * text in `data` ("No more params", "missing field `name`…", "invalid
 * type: integer `5`, expected a string…"). Extra parameters are ignored.
 * The texts' "at line 1 column N" is counted on the compact JSON of the
 * params (what zinit's own client sends), not on the client's bytes.
 */
import { rustDebug } from "./errors.ts";
import { controlError, RPC } from "./protocol.ts";

/** One parameter: a string (optional or not) or an object (always required). */
export type ParamSpec =
  | { readonly type: "string"; readonly required: boolean; readonly description: string }
  | { readonly type: "object"; readonly required: true; readonly description: string };

/** A method's parameters, in positional order (JavaScript keeps string keys in insertion order). */
export type ParamSpecs = Readonly<Record<string, ParamSpec>>;

/** jsonrpsee's Invalid params error, serde's text as its data. */
export function invalidParams(data: string) {
  const e = controlError(RPC.INVALID_PARAMS, "Invalid params");
  e.detail.rpcData = data;
  return e;
}

/** Pure: how serde_json names a value it did not expect. */
function unexpected(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "boolean") return `boolean \`${v}\``;
  if (typeof v === "number")
    return Number.isInteger(v) ? `integer \`${v}\`` : `floating point \`${v}\``;
  if (typeof v === "string") return `string ${rustDebug(v)}`;
  return Array.isArray(v) ? "sequence" : "map";
}

/** Pure: whether `v` is of the spec's type; null counts for an optional string (None). */
function fits(v: unknown, spec: ParamSpec): boolean {
  if (v === null) return !spec.required;
  if (spec.type === "string") return typeof v === "string";
  return typeof v === "object" && !Array.isArray(v);
}

/** Pure: serde's invalid-type text for `v`, the column being where its value ends (a container: where it starts). */
function typeError(v: unknown, spec: ParamSpec, before: number): string {
  const expected = spec.type === "string" ? "a string" : "a map";
  const text = JSON.stringify(v) ?? "null";
  const column = v !== null && typeof v === "object" ? before + 1 : before + text.length;
  return `invalid type: ${unexpected(v)}, expected ${expected} at line 1 column ${column}`;
}

/** Pure: parameters by position (jsonrpsee's sequence); `params` absent or null means none. */
function byPosition(params: unknown, specs: ParamSpecs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const list = params === undefined || params === null ? [] : params;
  Object.entries(specs).forEach(([name, spec], i) => {
    if (!Array.isArray(list))
      throw invalidParams(
        `Invalid params. Expected one of '[', ']' or ',' but found ${rustDebug(JSON.stringify(list))}`,
      );
    if (i >= list.length) {
      if (spec.required) throw invalidParams("No more params");
      return;
    }
    const v = list[i];
    if (!fits(v, spec)) throw invalidParams(typeError(v, spec, 0));
    out[name] = v ?? undefined;
  });
  return out;
}

/** Pure: parameters by name (serde reads the object's keys in order, then names the first missing field). */
function byName(params: Record<string, unknown>, specs: ParamSpecs): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  let before = 1; // the "{"
  for (const [key, v] of Object.entries(params)) {
    before += JSON.stringify(key).length + 1;
    const spec = Object.hasOwn(specs, key) ? specs[key] : undefined;
    if (spec) {
      if (!fits(v, spec)) throw invalidParams(typeError(v, spec, before));
      out[key] = v ?? undefined;
    }
    before += (JSON.stringify(v) ?? "null").length + 1;
  }
  for (const [name, spec] of Object.entries(specs))
    if (spec.required && out[name] === undefined)
      throw invalidParams(`missing field \`${name}\` at line 1 column ${Math.max(before, 2)}`);
  return out;
}

/**
 * Pure: a method's parameters by name, read from the request's params as
 * jsonrpsee does; throws its Invalid params error.
 */
export function parseParams(params: unknown, specs: ParamSpecs): Record<string, unknown> {
  if (Object.keys(specs).length === 0) return {};
  if (params && typeof params === "object" && !Array.isArray(params))
    return byName(params as Record<string, unknown>, specs);
  return byPosition(params, specs);
}
