/**
 * The real mycelium and zinit, built from ../shared/vendor by
 * scripts/build-vendor.sh (once per machine, cached outside the clone; the
 * script answers at once when the cache is warm), and zclient
 * (test/zinit-client: the zinit-client crate from crates.io as a command
 * line), built by the same script. A test that needs one fails loudly when
 * it cannot be built: nothing is skipped for its lack.
 * MYCELIUM_BIN / ZINIT_BIN / ZCLIENT_BIN override the lookup.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..");
const found = new Map<string, string>();

/** The variable build-vendor.sh prints (and the `*_BIN` override) per name. */
const VARS = { mycelium: "MYCELIUM", zinit: "ZINIT", "zinit-client": "ZCLIENT" } as const;

/** Absolute path of the real `mycelium` or `zinit` binary (0.7.10 / 0.2.14), or of zclient (zinit-client 0.4.0). */
export function vendorBinary(name: keyof typeof VARS): string {
  const env = process.env[`${VARS[name]}_BIN`];
  if (env) return env;
  const have = found.get(name);
  if (have) return have;
  const p = Bun.spawnSync(["bash", join(ROOT, "scripts/build-vendor.sh"), name], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const line = p.stdout
    .toString()
    .split("\n")
    .find((l) => l.startsWith(`${VARS[name]}=`));
  if (p.exitCode !== 0 || !line)
    throw new Error(
      `the real ${name} is not available (scripts/build-vendor.sh ${name} exited ${p.exitCode}): ${p.stderr.toString().trim().slice(-1500)}`,
    );
  const path = line.slice(VARS[name].length + 1);
  found.set(name, path);
  return path;
}

/** Path of a source tarball of ../shared/vendor ($HERO_VENDOR_DIR, else as scripts/build-vendor.sh finds it). */
export function vendorTarball(file: string): string {
  const dirs = [process.env.HERO_VENDOR_DIR, join(ROOT, "../shared/vendor"), "/work/shared/vendor"];
  for (const d of dirs) if (d && existsSync(join(d, file))) return join(d, file);
  throw new Error(`${file} not found in ${dirs.filter(Boolean).join(", ")} (set HERO_VENDOR_DIR)`);
}

/** The text of `path` inside a vendored source tarball (e.g. zinit-0.2.28/openrpc.json). */
export function vendorSourceFile(tarball: string, path: string): string {
  const p = Bun.spawnSync(["tar", "-xzOf", vendorTarball(tarball), path]);
  if (p.exitCode !== 0) throw new Error(`cannot read ${path} from ${tarball}: ${p.stderr}`);
  return p.stdout.toString();
}
