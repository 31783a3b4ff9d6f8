/**
 * The live manifest a VM or node follows in a VM test: bootstrapper.toml
 * built from the publisher directory and signed, as `hero-init manifest
 * publish` would.
 */
import { join } from "node:path";
import type { SecretKey } from "../../lib/minisign.ts";
import { buildManifest, publishSigned } from "../../update/publish.ts";

/** Builds `pub`/bootstrapper.toml as manifest `version` (expires in a day), served at `baseUrl`, and signs it. */
export function publishManifest(
  pub: string,
  baseUrl: string,
  version: number,
  key: SecretKey,
): void {
  const text = buildManifest(pub, {
    baseUrl,
    version,
    expires: new Date(Date.now() + 86_400_000),
  });
  publishSigned(join(pub, "bootstrapper.toml"), new TextEncoder().encode(text), key, `v${version}`);
}
