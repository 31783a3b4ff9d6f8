/**
 * Types for the two @iarna/toml files lib/toml.ts imports (the package types
 * its root only, which also loads a stream parser hero-init does not use).
 */
declare module "@iarna/toml/parse-string.js" {
  import type { JsonMap } from "@iarna/toml";
  export default function parse(toml: string): JsonMap;
}

declare module "@iarna/toml/stringify.js" {
  import type { JsonMap } from "@iarna/toml";
  export default function stringify(value: JsonMap): string;
}
