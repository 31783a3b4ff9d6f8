/**
 * A second hero-init build that really differs from dist/hero-init: the
 * version it reports (`hero-init version`, /health, the agent) is
 * package.json's, bundled by lib/version.ts at build time. The source tree
 * is copied to a work directory (node_modules linked, not copied), the
 * copy's package.json gets another version, and the copy's own
 * scripts/build.sh builds it, so it is made exactly like the real one.
 * Self-update tests publish it to see which binary really runs and boots.
 */
import { cpSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "../..");
/** Not copied: dependencies (linked instead), build output, git, caches and VM logs. */
const SKIP = new Set(["node_modules", "dist", ".git", ".cache"]);

/** A built binary and what it reports. */
export interface Build {
  path: string;
  version: string;
  sha256: string;
}

/** sha256 (hex) of a file. */
export function fileSha256(path: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(path)).digest("hex");
}

/** Runs `path version` and returns what it prints (trimmed); throws if it fails. */
export function reportedVersion(path: string): string {
  const p = Bun.spawnSync([path, "version"], { stdout: "pipe", stderr: "pipe" });
  if (p.exitCode !== 0)
    throw new Error(`${path} version exited ${p.exitCode}: ${p.stderr.toString().trim()}`);
  return p.stdout.toString().trim();
}

/**
 * Builds hero-init from a copy of this tree with package.json's version set
 * to `version`, in `work` (which must not exist or be empty). `patch` may
 * change the copied sources before the build.
 */
export function buildHeroInitVersion(
  work: string,
  version: string,
  patch?: (srcRoot: string) => void,
): Build {
  const src = join(work, "src");
  mkdirSync(src, { recursive: true });
  for (const e of readdirSync(ROOT))
    if (!SKIP.has(e)) cpSync(join(ROOT, e), join(src, e), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(src, "node_modules"));
  const pkgFile = join(src, "package.json");
  const pkg = JSON.parse(readFileSync(pkgFile, "utf8")) as { version: string };
  pkg.version = version;
  writeFileSync(pkgFile, `${JSON.stringify(pkg, null, 2)}\n`);
  patch?.(src);
  const b = Bun.spawnSync(["bash", "scripts/build.sh"], {
    cwd: src,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (b.exitCode !== 0)
    throw new Error(`building hero-init ${version} failed:\n${b.stderr.toString().slice(-2000)}`);
  const path = join(src, "dist/hero-init");
  const reported = reportedVersion(path);
  if (reported !== version)
    throw new Error(`the second build reports version ${reported}, not ${version}`);
  return { path, version, sha256: fileSha256(path) };
}
